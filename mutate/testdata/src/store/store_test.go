package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
)

func newMock(t *testing.T) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	db, mock, err := sqlmock.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, mock
}

func TestTransferDebitFailsRollsBack(t *testing.T) {
	db, mock := newMock(t)
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE accounts").WillReturnError(errors.New("boom"))
	mock.ExpectRollback()
	if err := Transfer(context.Background(), db, "a", "b", 5); err == nil {
		t.Fatal("Transfer: got nil error; want the debit's")
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestTransferCommitFails(t *testing.T) {
	db, mock := newMock(t)
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE accounts").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec("UPDATE accounts").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit().WillReturnError(errors.New("commit lost"))
	if err := Transfer(context.Background(), db, "a", "b", 5); err == nil {
		t.Fatal("Transfer: got nil error; want the commit's")
	}
}

func TestBalances(t *testing.T) {
	db, mock := newMock(t)
	mock.ExpectQuery("SELECT id, balance").WillReturnRows(sqlmock.NewRows([]string{"id", "balance"}).AddRow("a", 1).AddRow("b", 2))
	got, err := Balances(context.Background(), db)
	if err != nil || len(got) != 2 {
		t.Fatalf("Balances: got %v, %v; want 2 accounts", got, err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestBalancesRowError(t *testing.T) {
	db, mock := newMock(t)
	rows := sqlmock.NewRows([]string{"id", "balance"}).AddRow("a", 1).AddRow("b", 2).RowError(1, errors.New("connection lost"))
	mock.ExpectQuery("SELECT id, balance").WillReturnRows(rows)
	if _, err := Balances(context.Background(), db); err == nil {
		t.Fatal("Balances: got nil error; want the rows error")
	}
}
