// Package wire is the codec for Airlock's plugin protocol: frames, message
// bodies, error codes and version negotiation. docs/protocol.md is the
// normative specification; this package is its reference implementation and
// testdata/wire holds the golden frames every SDK must reproduce byte for byte.
//
// The package imports only the standard library because the Go plugin SDK
// (sdk/go/plugin) shares it with the host: one codec, two users, no drift.
//
// # Message pairs
//
//	host                                   plugin
//	 |  HELLO {range, max frame, names}  -->  |   negotiate: highest common
//	 |  <-- WELCOME {version, range, exports}  |   version, or ERROR id 0
//	 |  GRANT {capability tokens}        -->  |   activate (again on key rotation)
//	 |                                         |
//	 |  CALL id=n {timeout, fn, payload} -->   |   operate: many ids in flight,
//	 |  CANCEL id=n                      -->   |   in both directions
//	 |  <-- RESULT id=n {payload}              |
//	 |  <-- ERROR  id=n {code, message}        |
//	 |                                         |
//	 |  <-- HOSTCALL id=m {timeout, fn, token, payload}
//	 |  <-- CANCEL id=m                        |
//	 |  RESULT id=m | ERROR id=m         -->   |
//	 |                                         |
//	 |  PING id=k                        -->   |   watchdog (either side may ping)
//	 |  <-- PONG id=k                          |
//	 |  <-- LOG id=call or 0 {level, msg, attrs}
//	 |                                         |
//	 |  SHUTDOWN {grace}                 -->   |   drain: finish in-flight calls
//	 |  <-- GOODBYE                            |   then exit 0
//
// Call ids are chosen by the side that starts the call. RESULT, ERROR and
// CANCEL carry the id of the call they concern: a peer resolves a RESULT or
// ERROR against the calls it started, and a CANCEL against the calls it is
// serving, so both directions share one connection without their ids
// colliding.
//
// # Decoding
//
// Decode and Reader tell "need more bytes" (ErrIncomplete) apart from
// "invalid" (*Error). A length prefix is checked against the negotiated
// maximum before any body is read, so a hostile peer cannot make the decoder
// allocate more than that maximum.
package wire
