// Command launcher is a minimal sandbox launcher binary: it imports the
// launcher package for its init function and does nothing else. Tests and
// benchmarks pass it as Spec.Launcher to measure a launcher smaller than
// the host binary.
package main

import _ "github.com/airlockhq/airlock/internal/sandbox/launcher"

func main() {}
