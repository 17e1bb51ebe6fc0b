/* utf8.h — strict UTF-8 validation shared by every parser (configs, safetensors headers,
 * datasets, stop strings): well-formed sequences only (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no truncated sequence at the end). */
#ifndef POSTTRAIN_CORE_UTF8_H
#define POSTTRAIN_CORE_UTF8_H

#include <stddef.h>

/* Length of the well-formed sequence starting at s (n bytes available), or 0 when s does not
 * start one. */
size_t utf8_sequence_len(const unsigned char *s, size_t n);
/* Offset of the first byte that is not part of well-formed UTF-8, or n when all of it is. */
size_t utf8_valid_prefix(const void *s, size_t n);

#endif
