package handlers

import "github.com/sessionsafe/sessionsafe/internal/mutant"

// plantedOnPostgres names, for each bug caught on real Postgres, the check
// that catches it.
var plantedOnPostgres = map[mutant.Bug]check{}
