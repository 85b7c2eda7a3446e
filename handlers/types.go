package handlers

import "time"

// Thread is one chat thread as its owner sees it.
type Thread struct {
	ID           string         `json:"id"`
	UserID       string         `json:"user_id"`
	Title        string         `json:"title"`
	Metadata     map[string]any `json:"metadata"`
	MessageCount int            `json:"message_count"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

// Message is one message of a thread; Seq numbers a thread's messages 1, 2, 3...
type Message struct {
	ID              string         `json:"id"`
	ThreadID        string         `json:"thread_id"`
	Role            string         `json:"role"`
	Content         string         `json:"content"`
	ClientMessageID string         `json:"client_message_id,omitempty"`
	Metadata        map[string]any `json:"metadata"`
	Seq             int64          `json:"seq"`
	CreatedAt       time.Time      `json:"created_at"`
}

// Page selects a slice of a list: Limit 1..100 items after skipping Offset (≥ 0).
type Page struct {
	Offset int
	Limit  int
}

// CreateThreadInput is what CreateThread accepts. Metadata's "user_id" key is
// always set to the owner.
type CreateThreadInput struct {
	Title    string         `json:"title"`
	Metadata map[string]any `json:"metadata"`
}

// UpdateThreadInput is a patch: a nil Title keeps the title; Metadata keys are
// merged into the stored metadata (a "user_id" key is ignored).
type UpdateThreadInput struct {
	Title    *string        `json:"title"`
	Metadata map[string]any `json:"metadata"`
}

// SendMessageInput is what SendMessage accepts. Role defaults to "user".
// A non-empty ClientMessageID makes the send idempotent: sending again with the
// same id returns the stored message.
type SendMessageInput struct {
	Role            string         `json:"role"`
	Content         string         `json:"content"`
	ClientMessageID string         `json:"client_message_id"`
	Metadata        map[string]any `json:"metadata"`
}
