package testkit

import "sync"

// FanOut runs fn(0) … fn(n-1) on n goroutines at once, waits for all of them, and returns
// their errors, errs[i] being fn(i)'s. fn must not call t.Fatal (it runs off the test's
// goroutine): return the error instead.
func FanOut(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errs
}
