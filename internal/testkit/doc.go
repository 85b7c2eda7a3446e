// Package testkit holds the few helpers every test package of sessionsafe shares, so that
// each is written once: [Eventually] and [EventuallyNil] poll for a condition against the
// test's own deadline (never a sleep), and [FanOut] runs a function on n goroutines at once
// and collects their errors.
//
// It is for tests only: no non-test code imports it.
package testkit
