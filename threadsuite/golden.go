package threadsuite

import (
	"embed"
	"io/fs"
)

//go:embed testdata/*.trace
var goldenFS embed.FS

// GoldenFS returns the catalog's golden traces ("<operation>.trace"), embedded
// from testdata so that programs (the CLI) run the sqlmock matrix anywhere.
// Pass it as scenarios.Config.Golden.
func GoldenFS() fs.FS {
	sub, err := fs.Sub(goldenFS, "testdata")
	if err != nil { // cannot happen: the directory is embedded
		panic(err)
	}
	return sub
}
