/* The table illumos_header_values.c fills (C and C++). */
#ifndef EVSHIM_TESTS_ABI_ILLUMOS_HEADER_VALUES_H
#define EVSHIM_TESTS_ABI_ILLUMOS_HEADER_VALUES_H

#ifdef __cplusplus
extern "C" {
#endif

struct evshim_header_value {
  const char *name;
  long long value;
};

extern const struct evshim_header_value evshim_illumos_header_values[];
extern const unsigned evshim_illumos_header_value_count;

#ifdef __cplusplus
}
#endif

#endif
