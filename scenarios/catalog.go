package scenarios

import (
	"github.com/sessionsafe/sessionsafe/handlers"
)

// Operation names of the thread catalog, as used in case names and golden files.
const (
	OpListThreads  = "ListThreads"
	OpCreateThread = "CreateThread"
	OpGetThread    = "GetThread"
	OpUpdateThread = "UpdateThread"
	OpDeleteThread = "DeleteThread"
	OpAutoRename   = "AutoRename"
	OpGetMessages  = "GetMessages"
	OpSendMessage  = "SendMessage"
)

// Catalog returns the eight handlers operations as runner Operations, each
// calling handlers.Service directly on the case's instrumented pool; opts are
// passed to handlers.New for every case (e.g. a title generator or a logger).
func Catalog(opts ...handlers.Option) []Operation {
	return nil
}

// HTTPCatalog returns the eight operations driven through Service.Handler()
// (httptest, header X-User-ID), named like Catalog's; meant for runs with
// Config.Disconnect.
func HTTPCatalog(opts ...handlers.Option) []Operation {
	return nil
}

// Lookup returns the operation named name from ops.
func Lookup(ops []Operation, name string) (Operation, bool) {
	for _, op := range ops {
		if op.Name == name {
			return op, true
		}
	}
	return Operation{}, false
}
