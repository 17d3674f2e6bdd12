// AF_XDP UMEM provider (see include/pagepool/providers/umem.hpp).
