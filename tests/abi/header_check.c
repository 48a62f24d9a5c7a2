/* Compiled with -include <a foreign header> by the header checks (tests/meson.build). */
typedef int evshim_header_check_t;
