package handlers

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestValidationBeforeAnyDatabaseCall: every bad input is answered with a
// *ValidationError naming the field, and no database call is made (the
// mock has no expectation: any call would fail the invariants).
func TestValidationBeforeAnyDatabaseCall(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	okTitle := "fine"
	badTitle := long(201)
	nulTitle := "a\x00b"
	tests := []struct {
		name  string
		field string
		run   func(ctx context.Context, s *Service) error
	}{
		{"ListThreads/empty-user", "user_id", func(ctx context.Context, s *Service) error {
			_, err := s.ListThreads(ctx, "", Page{Limit: 1})
			return err
		}},
		{"ListThreads/user-too-long", "user_id", func(ctx context.Context, s *Service) error {
			_, err := s.ListThreads(ctx, long(129), Page{Limit: 1})
			return err
		}},
		{"ListThreads/user-control-char", "user_id", func(ctx context.Context, s *Service) error {
			_, err := s.ListThreads(ctx, "al\nice", Page{Limit: 1})
			return err
		}},
		{"ListThreads/user-invalid-utf8", "user_id", func(ctx context.Context, s *Service) error {
			_, err := s.ListThreads(ctx, "al\xffice", Page{Limit: 1})
			return err
		}},
		{"ListThreads/limit-zero", "limit", func(ctx context.Context, s *Service) error {
			_, err := s.ListThreads(ctx, alice, Page{Limit: 0})
			return err
		}},
		{"ListThreads/limit-101", "limit", func(ctx context.Context, s *Service) error {
			_, err := s.ListThreads(ctx, alice, Page{Limit: 101})
			return err
		}},
		{"ListThreads/negative-offset", "offset", func(ctx context.Context, s *Service) error {
			_, err := s.ListThreads(ctx, alice, Page{Offset: -1, Limit: 1})
			return err
		}},
		{"CreateThread/title-too-long", "title", func(ctx context.Context, s *Service) error {
			_, err := s.CreateThread(ctx, alice, CreateThreadInput{Title: badTitle})
			return err
		}},
		{"CreateThread/title-nul", "title", func(ctx context.Context, s *Service) error {
			_, err := s.CreateThread(ctx, alice, CreateThreadInput{Title: nulTitle})
			return err
		}},
		{"CreateThread/metadata-too-large", "metadata", func(ctx context.Context, s *Service) error {
			_, err := s.CreateThread(ctx, alice, CreateThreadInput{Metadata: map[string]any{"big": long(17 << 10)}})
			return err
		}},
		{"CreateThread/metadata-nul-value", "metadata", func(ctx context.Context, s *Service) error {
			_, err := s.CreateThread(ctx, alice, CreateThreadInput{Metadata: map[string]any{"k": []any{"a\x00"}}})
			return err
		}},
		{"CreateThread/metadata-invalid-utf8-key", "metadata", func(ctx context.Context, s *Service) error {
			_, err := s.CreateThread(ctx, alice, CreateThreadInput{Metadata: map[string]any{"\xff": 1}})
			return err
		}},
		{"CreateThread/metadata-unencodable", "metadata", func(ctx context.Context, s *Service) error {
			_, err := s.CreateThread(ctx, alice, CreateThreadInput{Metadata: map[string]any{"f": func() {}}})
			return err
		}},
		{"GetThread/bad-thread-id", "thread_id", func(ctx context.Context, s *Service) error {
			_, err := s.GetThread(ctx, alice, "42")
			return err
		}},
		{"GetThread/thread-id-not-hex", "thread_id", func(ctx context.Context, s *Service) error {
			_, err := s.GetThread(ctx, alice, "zb3c9a52-6f3e-4d8a-9a43-2f1d1b6c7e01")
			return err
		}},
		{"GetThread/empty-user", "user_id", func(ctx context.Context, s *Service) error {
			_, err := s.GetThread(ctx, "", threadID)
			return err
		}},
		{"UpdateThread/nothing-to-update", "body", func(ctx context.Context, s *Service) error {
			_, err := s.UpdateThread(ctx, alice, threadID, UpdateThreadInput{})
			return err
		}},
		{"UpdateThread/title-too-long", "title", func(ctx context.Context, s *Service) error {
			_, err := s.UpdateThread(ctx, alice, threadID, UpdateThreadInput{Title: &badTitle})
			return err
		}},
		{"UpdateThread/metadata-too-large", "metadata", func(ctx context.Context, s *Service) error {
			_, err := s.UpdateThread(ctx, alice, threadID, UpdateThreadInput{Title: &okTitle, Metadata: map[string]any{"big": long(17 << 10)}})
			return err
		}},
		{"UpdateThread/bad-thread-id", "thread_id", func(ctx context.Context, s *Service) error {
			_, err := s.UpdateThread(ctx, alice, "", UpdateThreadInput{Title: &okTitle})
			return err
		}},
		{"DeleteThread/bad-thread-id", "thread_id", func(ctx context.Context, s *Service) error {
			return s.DeleteThread(ctx, alice, "not-a-uuid")
		}},
		{"DeleteThread/empty-user", "user_id", func(ctx context.Context, s *Service) error {
			return s.DeleteThread(ctx, "", threadID)
		}},
		{"AutoRename/bad-thread-id", "thread_id", func(ctx context.Context, s *Service) error {
			_, err := s.AutoRename(ctx, alice, "x")
			return err
		}},
		{"GetMessages/limit-too-large", "limit", func(ctx context.Context, s *Service) error {
			_, err := s.GetMessages(ctx, alice, threadID, Page{Limit: 1000})
			return err
		}},
		{"GetMessages/bad-thread-id", "thread_id", func(ctx context.Context, s *Service) error {
			_, err := s.GetMessages(ctx, alice, "x", Page{Limit: 1})
			return err
		}},
		{"SendMessage/empty-content", "content", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, threadID, SendMessageInput{})
			return err
		}},
		{"SendMessage/content-too-large", "content", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, threadID, SendMessageInput{Content: long(32<<10 + 1)})
			return err
		}},
		{"SendMessage/content-nul", "content", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, threadID, SendMessageInput{Content: "a\x00"})
			return err
		}},
		{"SendMessage/content-invalid-utf8", "content", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, threadID, SendMessageInput{Content: "\xc3\x28"})
			return err
		}},
		{"SendMessage/bad-role", "role", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, threadID, SendMessageInput{Role: "admin", Content: "x"})
			return err
		}},
		{"SendMessage/client-id-too-long", "client_message_id", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, threadID, SendMessageInput{Content: "x", ClientMessageID: long(129)})
			return err
		}},
		{"SendMessage/metadata-too-large", "metadata", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, threadID, SendMessageInput{Content: "x", Metadata: map[string]any{"big": long(17 << 10)}})
			return err
		}},
		{"SendMessage/bad-thread-id", "thread_id", func(ctx context.Context, s *Service) error {
			_, err := s.SendMessage(ctx, alice, "x", SendMessageInput{Content: "x"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newMock(t)
			err := tt.run(context.Background(), f.svc)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("got %v; want a *ValidationError for field %q", err, tt.field)
			}
			if err := f.invariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFirstWordsTitle(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"six-words", "Plan a weekend in Lisbon with trams and pastries", "Plan a weekend in Lisbon with"},
		{"whitespace-and-controls", "  hello\t\x01world\n ", "hello world"},
		{"empty", " \n\t ", "New thread"},
		{"long-word-truncated", strings.Repeat("x", 100), strings.Repeat("x", 60)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FirstWordsTitle{}.GenerateTitle(context.Background(), tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestIsRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"serialization", pgErr("40001"), true},
		{"deadlock", pgErr("40P01"), true},
		{"statement-timeout", pgErr("57014"), true},
		{"admin-shutdown", pgErr("57P01"), true},
		{"too-many-connections", pgErr("53300"), true},
		{"connection-failure", pgErr("08006"), true},
		{"unique-violation", pgErr("23505"), false},
		{"plain", errInjected, false},
		{"not-found", ErrNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsRetryable(tt.err); got != tt.want {
				t.Fatalf("IsRetryable(%v) = %v; want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestHasLoneSurrogate: a \u escape of half a surrogate pair is found
// wherever it is; a whole pair, an escaped backslash and a truncated text are not.
func TestHasLoneSurrogate(t *testing.T) {
	tests := []struct {
		name string
		json string
		want bool
	}{
		{name: "no-escape", json: `{"title":"plain"}`},
		{name: "bmp-escape", json: `{"title":"\u00e9\u4e2d"}`},
		{name: "pair", json: `{"title":"\ud83d\ude00"}`},
		{name: "pair-upper-case", json: `{"title":"\uD83D\uDE00"}`},
		{name: "escaped-backslash", json: `{"title":"\\ud800"}`},
		{name: "escaped-quote-then-pair", json: `{"title":"\"\ud83d\ude00"}`},
		{name: "truncated-escape", json: `{"title":"\ud8`},
		{name: "backslash-at-end", json: `\`},
		{name: "lone-high", json: `{"title":"\ud800"}`, want: true},
		{name: "lone-high-at-end", json: `"\ud800`, want: true},
		{name: "lone-low", json: `{"title":"\udc00"}`, want: true},
		{name: "high-then-high", json: `"\ud800\ud800"`, want: true},
		{name: "high-then-bmp", json: `"\ud800\u0041"`, want: true},
		{name: "low-then-high", json: `"\ude00\ud83d"`, want: true},
		{name: "in-a-key", json: `{"\udfff":1}`, want: true},
		{name: "after-a-pair", json: `"\ud83d\ude00\ud83d"`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasLoneSurrogate([]byte(tt.json)); got != tt.want {
				t.Errorf("hasLoneSurrogate(%s): got %v; want %v", tt.json, got, tt.want)
			}
		})
	}
}
