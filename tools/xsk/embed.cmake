# Writes OUT, a C++ source defining `const unsigned char SYM[]` with the bytes
# of IN and `const std::size_t SYM_size`: a BPF object compiled into the tool
# that loads it, so the binaries need no file beside them.
#   cmake -DIN=x.bpf.o -DOUT=x_bpf.cpp -DSYM=name -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
# A line break every 16 bytes (80 characters) keeps the file readable.
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE "${OUT}" "// Generated from ${IN} by tools/xsk/embed.cmake; do not edit.\n#include <cstddef>\nextern const unsigned char ${SYM}[] = {\n${body}};\nextern const std::size_t ${SYM}_size = ${size};\n")
