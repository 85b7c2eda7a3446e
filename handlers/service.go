package handlers

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"unicode"
)

// TitleGenerator names a thread from its first user message. It is an
// external, slow and fallible call (an LLM in the original system): the
// service never holds a transaction or connection while it runs.
type TitleGenerator interface {
	GenerateTitle(ctx context.Context, firstMessage string) (string, error)
}

// Notifier is told after a rename has been committed. Its failure is logged;
// it does not undo the rename.
type Notifier interface {
	ThreadRenamed(ctx context.Context, t Thread) error
}

// Service runs the eight thread operations on a database. It is safe for
// concurrent use.
type Service struct {
	db         *sql.DB
	gen        TitleGenerator
	notifier   Notifier
	log        *slog.Logger
	maxRetries int
}

// Option configures a Service.
type Option func(*Service)

// WithTitleGenerator sets the generator AutoRename asks for a title
// (default: FirstWordsTitle).
func WithTitleGenerator(g TitleGenerator) Option { return func(s *Service) { s.gen = g } }

// WithNotifier sets the notifier AutoRename calls after its commit (default: none).
func WithNotifier(n Notifier) Option { return func(s *Service) { s.notifier = n } }

// WithLogger sets the logger for rollbacks, retries and notifier failures
// (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithMaxRetries sets how many times a unit of work is retried after a
// serialization failure or deadlock (default 3; 0 disables retries).
func WithMaxRetries(n int) Option { return func(s *Service) { s.maxRetries = max(n, 0) } }

// New returns a Service on db. The schema must have been applied (Migrate).
func New(db *sql.DB, opts ...Option) *Service {
	s := &Service{db: db, gen: FirstWordsTitle{}, log: slog.New(slog.DiscardHandler), maxRetries: 3}
	for _, o := range opts {
		o(s)
	}
	if s.gen == nil {
		s.gen = FirstWordsTitle{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// FirstWordsTitle is the default, deterministic TitleGenerator: the first
// words of the message (up to Words, default 6), control characters and
// runs of spaces removed, at most 60 characters; "New thread" if nothing is left.
type FirstWordsTitle struct {
	Words int
}

// GenerateTitle implements TitleGenerator.
func (g FirstWordsTitle) GenerateTitle(ctx context.Context, firstMessage string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	n := g.Words
	if n <= 0 {
		n = 6
	}
	words := strings.FieldsFunc(firstMessage, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	})
	if len(words) > n {
		words = words[:n]
	}
	title := []rune(strings.Join(words, " "))
	if len(title) > 60 {
		title = []rune(strings.TrimSpace(string(title[:60])))
	}
	if len(title) == 0 {
		return "New thread", nil
	}
	return string(title), nil
}
