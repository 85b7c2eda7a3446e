package sites

import "context"

// journal has methods named like a transaction's and rows': none of them is a site.
type journal struct{}

func (journal) Rollback() error                           { return nil }
func (journal) Commit() error                             { return nil }
func (journal) Close() error                              { return nil }
func (journal) Err() error                                { return nil }
func (journal) ExecContext(context.Context, string) error { return nil }

func undo(ctx context.Context, j journal) error {
	defer j.Rollback()
	if err := j.ExecContext(ctx, "SELECT 1 FOR UPDATE"); err != nil {
		j.Rollback()
		return err
	}
	if err := j.Err(); err != nil {
		return err
	}
	defer j.Close()
	return j.Commit()
}
