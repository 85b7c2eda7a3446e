package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
)

// Operation names, as they appear in errors and logs.
const (
	OpListThreads  = "list threads"
	OpCreateThread = "create thread"
	OpGetThread    = "get thread"
	OpUpdateThread = "update thread"
	OpDeleteThread = "delete thread"
	OpAutoRename   = "auto-rename"
	OpGetMessages  = "get messages"
	OpSendMessage  = "send message"
)

func opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}

// ListThreads returns the user's live threads, newest first, with their
// message counts.
func (s *Service) ListThreads(ctx context.Context, userID string, p Page) ([]Thread, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := checkPage(p); err != nil {
		return nil, err
	}
	var out []Thread
	err := s.inTx(ctx, OpListThreads, readOnly, func(ctx context.Context, q DBTX) error {
		var err error
		out, err = listThreads(ctx, q, userID, p)
		return err
	})
	if err != nil {
		return nil, opErr(OpListThreads, err)
	}
	return out, nil
}

// CreateThread creates a thread owned by userID. The metadata's "user_id"
// key is set to userID whatever the input says.
func (s *Service) CreateThread(ctx context.Context, userID string, in CreateThreadInput) (Thread, error) {
	if err := checkUserID(userID); err != nil {
		return Thread{}, err
	}
	if err := checkTitle(in.Title); err != nil {
		return Thread{}, err
	}
	meta := make(map[string]any, len(in.Metadata)+1)
	maps.Copy(meta, in.Metadata)
	meta[metadataOwnerKey] = userID
	b, err := encodeMetadata("metadata", meta)
	if err != nil {
		return Thread{}, err
	}
	var t Thread
	err = s.inTx(ctx, OpCreateThread, readWrite, func(ctx context.Context, q DBTX) error {
		var err error
		t, err = insertThread(ctx, q, userID, in.Title, b)
		return err
	})
	if err != nil {
		return Thread{}, opErr(OpCreateThread, err)
	}
	return t, nil
}

// GetThread returns one thread the user owns, with its message count read in
// the same transaction.
func (s *Service) GetThread(ctx context.Context, userID, threadID string) (Thread, error) {
	if err := checkOwnerAndThread(userID, threadID); err != nil {
		return Thread{}, err
	}
	var t Thread
	err := s.inTx(ctx, OpGetThread, readOnly, func(ctx context.Context, q DBTX) error {
		var err error
		if t, err = getThread(ctx, q, userID, threadID); err != nil {
			return err
		}
		t.MessageCount, err = countMessages(ctx, q, threadID)
		return err
	})
	if err != nil {
		return Thread{}, opErr(OpGetThread, err)
	}
	return t, nil
}

// UpdateThread sets the title (when in.Title is not nil) and merges
// in.Metadata into the stored metadata, atomically in SQL; the "user_id"
// metadata key never changes.
func (s *Service) UpdateThread(ctx context.Context, userID, threadID string, in UpdateThreadInput) (Thread, error) {
	if err := checkOwnerAndThread(userID, threadID); err != nil {
		return Thread{}, err
	}
	if in.Title == nil && len(in.Metadata) == 0 {
		return Thread{}, invalid("body", "nothing to update: give a title or metadata")
	}
	if in.Title != nil {
		if err := checkTitle(*in.Title); err != nil {
			return Thread{}, err
		}
	}
	patch := maps.Clone(in.Metadata)
	delete(patch, metadataOwnerKey)
	b, err := encodeMetadata("metadata", patch)
	if err != nil {
		return Thread{}, err
	}
	var t Thread
	err = s.inTx(ctx, OpUpdateThread, readWrite, func(ctx context.Context, q DBTX) error {
		var err error
		t, err = updateThread(ctx, q, userID, threadID, in.Title, b)
		return err
	})
	if err != nil {
		return Thread{}, opErr(OpUpdateThread, err)
	}
	return t, nil
}

// DeleteThread archives the thread; every operation then answers ErrNotFound
// for it.
func (s *Service) DeleteThread(ctx context.Context, userID, threadID string) error {
	if err := checkOwnerAndThread(userID, threadID); err != nil {
		return err
	}
	err := s.inTx(ctx, OpDeleteThread, readWrite, func(ctx context.Context, q DBTX) error {
		return archiveThread(ctx, q, userID, threadID)
	})
	return opErr(OpDeleteThread, err)
}

// AutoRename names the thread from its first user message: it reads (one
// read-only transaction), asks the TitleGenerator with no transaction or
// connection held, writes the title (a second transaction, only if the
// thread is still live and owned), then tells the Notifier after the commit.
func (s *Service) AutoRename(ctx context.Context, userID, threadID string) (Thread, error) {
	if err := checkOwnerAndThread(userID, threadID); err != nil {
		return Thread{}, err
	}
	var first string
	err := s.inTx(ctx, OpAutoRename, readOnly, func(ctx context.Context, q DBTX) error {
		if err := threadExists(ctx, q, userID, threadID); err != nil {
			return err
		}
		var err error
		first, err = firstUserMessage(ctx, q, threadID)
		return err
	})
	if err != nil {
		return Thread{}, opErr(OpAutoRename, err)
	}
	title, err := s.generateTitle(ctx, first)
	if err != nil {
		return Thread{}, opErr(OpAutoRename, err)
	}
	return s.renameAndNotify(ctx, func(ctx context.Context, q DBTX) (Thread, error) {
		return renameThread(ctx, q, userID, threadID, title)
	})
}

// renameAndNotify runs rename as AutoRename's write transaction and, once
// it has committed, tells the Notifier about the renamed thread.
func (s *Service) renameAndNotify(ctx context.Context, rename func(ctx context.Context, q DBTX) (Thread, error)) (Thread, error) {
	var t Thread
	err := s.inTx(ctx, OpAutoRename, readWrite, func(ctx context.Context, q DBTX) error {
		var err error
		t, err = rename(ctx, q)
		return err
	})
	if err != nil {
		return Thread{}, opErr(OpAutoRename, err)
	}
	s.notify(ctx, t)
	return t, nil
}

// generateTitle asks the generator and cleans its answer to a valid title.
func (s *Service) generateTitle(ctx context.Context, first string) (string, error) {
	title, err := s.gen.GenerateTitle(ctx, first)
	if err != nil {
		return "", fmt.Errorf("generate title: %w", err)
	}
	title = strings.Join(strings.Fields(strings.ToValidUTF8(strings.ReplaceAll(title, "\x00", ""), "")), " ")
	if r := []rune(title); len(r) > MaxTitleRunes {
		title = string(r[:MaxTitleRunes])
	}
	if title == "" {
		title = "New thread"
	}
	return title, nil
}

func (s *Service) notify(ctx context.Context, t Thread) {
	if s.notifier == nil {
		return
	}
	if err := s.notifier.ThreadRenamed(ctx, t); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "notify thread renamed failed",
			slog.String("operation", OpAutoRename), slog.String("thread_id", t.ID), slog.Any("error", err))
	}
}

// GetMessages returns a page of the thread's messages in seq order.
func (s *Service) GetMessages(ctx context.Context, userID, threadID string, p Page) ([]Message, error) {
	if err := checkOwnerAndThread(userID, threadID); err != nil {
		return nil, err
	}
	if err := checkPage(p); err != nil {
		return nil, err
	}
	var out []Message
	err := s.inTx(ctx, OpGetMessages, readOnly, func(ctx context.Context, q DBTX) error {
		if err := threadExists(ctx, q, userID, threadID); err != nil {
			return err
		}
		var err error
		out, err = listMessages(ctx, q, threadID, p)
		return err
	})
	if err != nil {
		return nil, opErr(OpGetMessages, err)
	}
	return out, nil
}

// SendMessage appends a message to the thread and bumps its updated time.
// Its seq comes from the thread's counter under the thread's row lock, so
// concurrent sends get distinct, gap-free seq. With a ClientMessageID, a
// retried send returns the message stored the first time.
func (s *Service) SendMessage(ctx context.Context, userID, threadID string, in SendMessageInput) (Message, error) {
	if err := checkOwnerAndThread(userID, threadID); err != nil {
		return Message{}, err
	}
	if err := checkSend(&in); err != nil {
		return Message{}, err
	}
	meta, err := encodeMetadata("metadata", in.Metadata)
	if err != nil {
		return Message{}, err
	}
	var m Message
	err = s.inTx(ctx, OpSendMessage, readWrite, func(ctx context.Context, q DBTX) error {
		if err := lockThread(ctx, q, userID, threadID); err != nil {
			return err
		}
		if in.ClientMessageID != "" {
			prev, ok, err := messageByClientID(ctx, q, threadID, in.ClientMessageID)
			if err != nil {
				return err
			}
			if ok {
				m = prev
				return nil
			}
		}
		seq, err := nextSeq(ctx, q, threadID)
		if err != nil {
			return err
		}
		m, err = insertMessage(ctx, q, threadID, in, meta, seq)
		return err
	})
	if err != nil {
		return Message{}, opErr(OpSendMessage, err)
	}
	return m, nil
}
