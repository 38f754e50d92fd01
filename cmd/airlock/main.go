// Command airlock scaffolds, validates, builds, inspects and calls Airlock
// plugins, and runs the demo. It uses only Airlock's public packages, so
// everything it does an embedder can do too.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
