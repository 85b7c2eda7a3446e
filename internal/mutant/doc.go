// Package mutant plants known session bugs in the handlers, for tests that
// must prove the harness catches them.
//
// A bug is switched on per call through the context (With); the handlers ask
// Has at each planted spot and run the correct code when the bug is absent.
// The package is internal so that the handlers' public API stays clean and no
// copy of the handlers is needed to test the harness against a broken version.
package mutant
