#!/bin/bash
# 34-h2-stream-ids.sh - RFC 9113 5.1.1 (h2spec http2/5.1.1/2): a HEADERS
# frame on a client stream id lower than one the client already opened ends
# the connection with GOAWAY PROTOCOL_ERROR; increasing ids, with or without
# gaps, are served.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/h2lib.sh"

FLOOD=${MG_H2FLOOD_BIN:-$MG_BUILDDIR/tests/helpers/mg_h2flood}
[ -x "$FLOOD" ] || bail_out "no $FLOOD (make check builds it)"
curl --version | grep -q HTTP2 || skip_all "curl without HTTP/2"

h2_setup
h2_start || bail_out "no gateway"
ids() { "$FLOOD" --port "$H2_PORT" --linger 1 ids "$1" 2>&1; }

out=$(ids 1,3,5)
like "$out" '^responses 3$' "streams 1, 3, 5: all answered"
unlike "$out" '^goaway' "streams 1, 3, 5: no GOAWAY"
out=$(ids 1,7,9)
like "$out" '^responses 3$' "streams 1, 7, 9 (3 and 5 skipped): all answered"
unlike "$out" '^goaway' "a gap in the ids is no error"
out=$(ids 5,3)
like "$out" '^goaway 1 last' "stream 3 after stream 5 (h2spec 5.1.1/2): GOAWAY PROTOCOL_ERROR"
like "$out" '^closed$' "stream 3 after stream 5: connection closed"
out=$(ids 1,7,5)
like "$out" '^goaway 1 last' "stream 5 after 7 (skipped between 1 and 7): GOAWAY PROTOCOL_ERROR"
like "$out" '^closed$' "connection closed"
out=$(ids 3,1)
like "$out" '^goaway 1 last' "stream 1 after 3 (the first id skipped): GOAWAY PROTOCOL_ERROR"
# every gap is remembered, not only the first few: 1, 5, ..., 69 skip 17
# ids; HEADERS on the last one skipped (67) still ends the connection
many=$(seq -s, 1 4 69)
out=$(ids "$many,71")
like "$out" '^responses 19$' "19 streams with 17 gaps between them: all answered"
unlike "$out" '^goaway' "17 gaps: no GOAWAY"
out=$(ids "$many,67")
like "$out" '^goaway 1 last' "stream 67 after 17 gaps: GOAWAY PROTOCOL_ERROR"
like "$out" '^closed$' "stream 67 after 17 gaps: connection closed"
is "$(h2_curl -o /dev/null -w '%{http_code}' /echo)" 200 "the gateway serves other connections"

done_testing
