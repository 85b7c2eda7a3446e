package scenarios

// GoTestCommand returns the go test command that runs exactly the test named
// name (t.Name() of a subtest, e.g. "TestProbes/Transfer/concurrent"), from
// the module root: "go test ./mypkg -run '^TestProbes$/Transfer/^concurrent$'".
// The package directory is the one the test binary runs in, relative to its
// module's root. It is the replay command of every matrix case RunTests runs;
// other harnesses that run an Operation in a test print it too.
func GoTestCommand(name string) string { return goTestCommand(name) }
