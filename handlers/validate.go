package handlers

import (
	"encoding/json"
	"strings"
	"unicode/utf16"
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

// hasLoneSurrogate reports whether a JSON text escapes a UTF-16 surrogate
// that is not half of a pair (as "\ud800" alone): encoding/json decodes it
// as U+FFFD where the client meant a character it never sent. A backslash
// outside a string is a syntax error the decoder reports.
func hasLoneSurrogate(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r, ok := unicodeEscape(b[i:])
		if !ok {
			i++ // skip the escaped character: \\ or \" starts nothing
			continue
		}
		if !utf16.IsSurrogate(r) {
			i += 5
			continue
		}
		low, ok := unicodeEscape(b[i+6:])
		if r >= 0xdc00 || !ok || low < 0xdc00 || low > 0xdfff {
			return true // a low half first, or a high half with no low half after it
		}
		i += 11
	}
	return false
}

// unicodeEscape decodes the \uXXXX escape b starts with.
func unicodeEscape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
