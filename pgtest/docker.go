package pgtest

import (
	"context"
	"errors"
)

func startDocker(ctx context.Context, cfg config, auto bool) (backend, error) {
	return nil, errors.New("docker provider not implemented yet")
}
