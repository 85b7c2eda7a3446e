package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/sessionsafe/sessionsafe/handlers"
)

func ExampleFirstWordsTitle() {
	title, _ := handlers.FirstWordsTitle{}.GenerateTitle(context.Background(),
		"  Plan a weekend in Lisbon with trams and pastries")
	fmt.Println(title)
	// Output: Plan a weekend in Lisbon with
}

func ExampleStatusOf() {
	for _, err := range []error{
		&handlers.ValidationError{Field: "title", Reason: "longer than 200 characters"},
		fmt.Errorf("get thread: %w", handlers.ErrNotFound),
		errors.New("disk on fire"),
	} {
		status, code := handlers.StatusOf(err)
		fmt.Println(status, code)
	}
	// Output:
	// 400 invalid_input
	// 404 not_found
	// 500 internal
}

// The HTTP API on a sqlmock database: one transaction per request, rolled
// back when the thread is not the caller's.
func ExampleService_Handler() {
	db, mock, _ := sqlmock.New()
	defer db.Close()
	mock.ExpectBegin()
	mock.ExpectQuery("SELECT .* FROM threads").WillReturnRows(sqlmock.NewRows(
		[]string{"id", "user_id", "title", "metadata", "message_count", "created_at", "updated_at"}))
	mock.ExpectRollback()

	h := handlers.New(db).Handler()
	req := httptest.NewRequest("GET", "/api/threads/0b3c9a52-6f3e-4d8a-9a43-2f1d1b6c7e01", nil)
	req.Header.Set(handlers.UserHeader, "bob")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	fmt.Println("expectations met:", mock.ExpectationsWereMet() == nil)
	// Output:
	// 404 {"error":{"code":"not_found","message":"thread not found"}}
	// expectations met: true
}
