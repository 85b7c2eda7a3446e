// Command sessionsafe runs the session-safety harness from the command line: see package
// cli for its subcommands, flags and exit codes.
package main

import (
	"os"

	"github.com/sessionsafe/sessionsafe/cli"
)

func main() { os.Exit(cli.Main()) }
