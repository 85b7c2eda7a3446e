package handlers

// testBug is a session bug that only this package's own tests plant (through
// the unexported Service field), to show that the checks with no
// internal/mutant bug of their own can fail too. Every Service built by New
// has none.
type testBug uint8

const (
	// bugSendWithoutLock: SendMessage reads the thread's counter without the
	// row lock and writes counter+1 back, so concurrent sends collide on seq.
	bugSendWithoutLock testBug = 1 << iota
	// bugNoOwnerFilter: GetMessages checks that the thread is live but not
	// whose it is.
	bugNoOwnerFilter
)

// withTestBugs plants test-only bugs; unexported, so only this package's
// tests can use it.
func withTestBugs(b testBug) Option { return func(s *Service) { s.bugs = b } }
