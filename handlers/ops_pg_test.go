package handlers

import (
	"context"
	"testing"
)

func TestPostgresSmoke(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, "alice", 2)
	got, err := f.svc.GetThread(context.Background(), "alice", th.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", got)
	f.mustClean(t)
}
