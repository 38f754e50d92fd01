// Package capability is the host's side of Airlock's capability model: it
// mints the tokens that carry a plugin's grant, verifies them on every host
// call, limits how often and how much each capability is used, and
// dispatches the call to the capability's implementation.
//
// # The path of a host call
//
//	plugin ── HOSTCALL {function, token, payload} ──> Broker.Handle
//	  1. verify    the token: format, key, signature chain, expiry, plugin,
//	               instance, still active                    → invalid_token
//	  2. route     the function to its capability; the token must be for it
//	                                                         → unknown_function, invalid_token
//	  3. scope     the capability reads from the payload what the call needs
//	               (host, path, key…) and the token's scope must cover it
//	                                                         → bad_input, permission_denied
//	  4. envelope  rate and byte budget for plugin×capability → rate_limited, budget_exceeded
//	  5. call      the implementation, which checks again where it acts
//	               (every redirect hop, every path component)
//	  6. audit     every refusal is one audit record and one slog line
//
// # Tokens
//
// A token is a macaroon-style bearer credential: root claims signed with
// HMAC-SHA256 under a key the plugin never sees, followed by zero or more
// caveats, each chained into the signature (sig_i = HMAC(sig_{i-1},
// caveat_i)). Anyone holding a token can add a caveat (Attenuate) without
// the key, and nobody can remove one, because that needs the earlier link of
// the chain. Verification intersects the root scope with every caveat in
// order, so a caveat can only narrow. docs/capabilities.md specifies the
// byte format.
//
// # Why HMAC and not Ed25519?
//
// The host both mints and verifies; nobody else needs to check a token, so a
// public key buys nothing, and HMAC chaining is what makes key-free
// attenuation possible. Verification costs one HMAC per link.
package capability
