/* normalize.h - request-target normalization before routing and
 * authorization (MeshConfig.pathNormalization, as Envoy's normalize_path,
 * merge_slashes and path_with_escaped_slashes_action).
 *
 * Pure and allocation free; the data plane calls it once per request, and
 * the same normalized path is used for routing, authorization and the
 * request forwarded upstream. */
#ifndef MG_POLICY_NORMALIZE_H
#define MG_POLICY_NORMALIZE_H
#include <stddef.h>
#include "config/config.h"             /* enum mg_path_norm */

/* Normalize the origin-form request target [target, target+len).
 *
 * Always: the fragment ("#..." ) is stripped; a target containing a control
 * byte, space, DEL, a byte >= 0x80 (stricter than Envoy, which would
 * re-encode it) or NUL, a path containing "%00", or a path that does not
 * start with '/' is refused. The single target "*" (OPTIONS) is returned
 * unchanged. The query ("?...") is kept byte for byte.
 *
 * Per mode, on the path only:
 *   MG_NORM_NONE: as received.
 *   MG_NORM_BASE: decode percent-encoded unreserved characters once
 *     (ALPHA DIGIT - . _ ~, hex case-insensitive; %2F and %5C stay), then
 *     '\' -> '/', then RFC 3986 dot-segment removal. Invalid escapes stay.
 *   MG_NORM_MERGE_SLASHES: BASE, then runs of '/' become one.
 *   MG_NORM_DECODE_AND_MERGE_SLASHES: first %2F -> '/' and %5C -> '\',
 *     then BASE, then merge slashes.
 *
 * out receives the normalized path followed by the original query,
 * NUL terminated; *outlen is its length without the NUL and *path_len the
 * length of the path part (what `paths` match). outcap >= len + 1 always
 * suffices (normalization never grows the target).
 * Returns 0, -1 for a request that must get 400, or -2 when outcap is too
 * small (nothing useful in out). */
int mg_path_normalize(const char *target, size_t len, enum mg_path_norm mode, char *out,
                      size_t outcap, size_t *outlen, size_t *path_len);

#endif
