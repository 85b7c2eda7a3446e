package handlers

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Limits on input, checked before any database call.
const (
	MaxTitleRunes      = 200       // MaxTitleRunes is the longest title, in characters.
	MaxContentBytes    = 32 << 10  // MaxContentBytes is the largest message content.
	MaxMetadataBytes   = 16 << 10  // MaxMetadataBytes is the largest metadata object, as JSON.
	MaxPageLimit       = 100       // MaxPageLimit is the largest Page.Limit.
	MaxUserIDBytes     = 128       // MaxUserIDBytes is the longest user id.
	MaxClientIDBytes   = 128       // MaxClientIDBytes is the longest client message id.
	metadataOwnerKey   = "user_id" // the metadata key that always names the owner
	defaultMessageRole = "user"
)

func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(field, "contains a NUL byte")
	}
	return nil
}

func checkUserID(id string) error {
	if id == "" {
		return invalid("user_id", "missing")
	}
	if len(id) > MaxUserIDBytes {
		return invalid("user_id", "longer than 128 bytes")
	}
	if err := checkText("user_id", id); err != nil {
		return err
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return invalid("user_id", "contains a control character")
		}
	}
	return nil
}

// checkThreadID accepts a UUID in its canonical 8-4-4-4-12 hex form.
func checkThreadID(id string) error {
	if len(id) != 36 {
		return invalid("thread_id", "not a UUID")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return invalid("thread_id", "not a UUID")
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return invalid("thread_id", "not a UUID")
			}
		}
	}
	return nil
}

func checkOwnerAndThread(userID, threadID string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	return checkThreadID(threadID)
}

func checkPage(p Page) error {
	if p.Offset < 0 {
		return invalid("offset", "negative")
	}
	if p.Limit < 1 || p.Limit > MaxPageLimit {
		return invalid("limit", "not between 1 and 100")
	}
	return nil
}

func checkTitle(t string) error {
	if err := checkText("title", t); err != nil {
		return err
	}
	if utf8.RuneCountInString(t) > MaxTitleRunes {
		return invalid("title", "longer than 200 characters")
	}
	return nil
}

// encodeMetadata validates m and returns it as a JSON object (never "null").
func encodeMetadata(field string, m map[string]any) ([]byte, error) {
	if m == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, invalid(field, "not encodable as JSON: "+err.Error())
	}
	if len(b) > MaxMetadataBytes {
		return nil, invalid(field, "larger than 16 KiB")
	}
	// encoding/json replaces invalid UTF-8 silently and escapes NUL as \u0000,
	// which jsonb rejects: check every key and string value ourselves.
	if err := checkJSONText(field, m); err != nil {
		return nil, err
	}
	return b, nil
}

func checkJSONText(field string, v any) error {
	switch v := v.(type) {
	case string:
		return checkText(field, v)
	case map[string]any:
		for k, e := range v {
			if err := checkText(field, k); err != nil {
				return err
			}
			if err := checkJSONText(field, e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := checkJSONText(field, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkSend(in *SendMessageInput) error {
	if in.Role == "" {
		in.Role = defaultMessageRole
	}
	switch in.Role {
	case "user", "assistant", "system":
	default:
		return invalid("role", "not one of user, assistant, system")
	}
	if in.Content == "" {
		return invalid("content", "empty")
	}
	if len(in.Content) > MaxContentBytes {
		return invalid("content", "larger than 32 KiB")
	}
	if err := checkText("content", in.Content); err != nil {
		return err
	}
	if len(in.ClientMessageID) > MaxClientIDBytes {
		return invalid("client_message_id", "longer than 128 bytes")
	}
	return checkText("client_message_id", in.ClientMessageID)
}
