// io_uring registered-buffer provider (see include/pagepool/providers/uring.hpp).
