package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// UserHeader is the request header that carries the caller's user id. It
// stands in for real authentication: put the API behind something that
// authenticates the caller and sets it.
const UserHeader = "X-User-ID"

// MaxBodyBytes is the largest request body the HTTP API reads; a larger one
// is answered 400.
const MaxBodyBytes = 64 << 10

// Default page size of the list endpoints when the query gives no limit.
const defaultLimit = 50

// Handler returns the HTTP API over the eight operations:
//
//	GET    /api/threads                     list (?offset=&limit=)
//	POST   /api/threads                     create
//	GET    /api/threads/{id}                get
//	PATCH  /api/threads/{id}                update
//	DELETE /api/threads/{id}                delete (archive)
//	POST   /api/threads/{id}/auto-rename    auto-rename
//	GET    /api/threads/{id}/messages       get messages (?offset=&limit=)
//	POST   /api/threads/{id}/messages       send message
//
// Bodies are JSON objects; errors are {"error": {"code", "message"}} with
// status 400 (invalid input, malformed or oversized body), 404 (missing,
// archived or not the caller's), 409 (conflict), 503 (retryable database
// failure) or 500. The message is a stable text for the client; the full
// error, with its call chain, goes to the log. The request context reaches
// the database; a request the client cancelled is answered
// StatusClientClosedRequest.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/threads", s.httpListThreads)
	mux.HandleFunc("POST /api/threads", s.httpCreateThread)
	mux.HandleFunc("GET /api/threads/{id}", s.httpGetThread)
	mux.HandleFunc("PATCH /api/threads/{id}", s.httpUpdateThread)
	mux.HandleFunc("DELETE /api/threads/{id}", s.httpDeleteThread)
	mux.HandleFunc("POST /api/threads/{id}/auto-rename", s.httpAutoRename)
	mux.HandleFunc("GET /api/threads/{id}/messages", s.httpGetMessages)
	mux.HandleFunc("POST /api/threads/{id}/messages", s.httpSendMessage)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			routeError(w, r, mux)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// routeError answers a request no route matches in the API's JSON error
// shape: the mux decides the status (404, or 405 with its Allow header) and
// its plain-text body is replaced.
func routeError(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	rec := &statusRecorder{header: w.Header()}
	mux.ServeHTTP(rec, r)
	var body errorBody
	switch rec.status {
	case http.StatusNotFound:
		body.Error.Code, body.Error.Message = CodeNotFound, "no route for "+r.URL.Path
	case http.StatusMethodNotAllowed:
		body.Error.Code, body.Error.Message = CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path
	default: // a redirect to the cleaned path: no body needed
		w.WriteHeader(rec.status)
		return
	}
	writeJSON(w, rec.status, body)
}

// statusRecorder keeps the status a handler writes, shares the real
// response's header, and drops the body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) WriteHeader(status int)      { r.status = status }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Stable error codes of the HTTP API.
const (
	CodeInvalid     = "invalid_input"
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeUnavailable = "unavailable"
	CodeInternal    = "internal"
	// CodeMethodNotAllowed answers a known path asked with a method it does
	// not serve (405, with an Allow header).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeClientClosedRequest answers a request the client cancelled
	// (StatusClientClosedRequest).
	CodeClientClosedRequest = "client_closed_request"
)

// StatusClientClosedRequest is the status of a request whose context was
// cancelled (the client went away) before its operation finished: nginx's
// 499. The client never sees it; it keeps such requests out of the 5xx
// counts and the error log (they are logged at info level).
const StatusClientClosedRequest = 499

// StatusOf maps an operation's error to the HTTP status and stable code the
// API answers with.
func StatusOf(err error) (int, string) {
	var ve *ValidationError
	var vv ValidationError
	switch {
	case errors.As(err, &ve), errors.As(err, &vv):
		return http.StatusBadRequest, CodeInvalid
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, CodeConflict
	case IsRetryable(err):
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusInternalServerError, CodeInternal
}

// writeError answers err in the API's error shape with a stable message
// that names no internal call, and logs the full error: at error level for a
// 5xx, at info level for a 4xx or a request the client cancelled.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := StatusOf(err)
	message := clientMessage(status, err)
	level := slog.LevelInfo
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		// Whatever the operation answered, it was cut short by the client.
		status, code, message = StatusClientClosedRequest, CodeClientClosedRequest, "the client closed the request"
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		level = slog.LevelError
	case status >= 500:
		level = slog.LevelError
	}
	s.log.LogAttrs(r.Context(), level, "request failed",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Any("error", err))
	var body errorBody
	body.Error.Code, body.Error.Message = code, message
	writeJSON(w, status, body)
}

// clientMessage is the text the client sees for err answered with status.
func clientMessage(status int, err error) string {
	switch status {
	case http.StatusBadRequest:
		if ve, ok := validationOf(err); ok {
			return "invalid " + ve.Field + ": " + ve.Reason
		}
		return "invalid input"
	case http.StatusNotFound:
		return "thread not found"
	case http.StatusConflict:
		if errors.Is(err, errNoUserMessage) {
			return "the thread has no user message to name it from"
		}
		return "the request conflicts with the thread's stored state"
	case http.StatusServiceUnavailable:
		return "the database is unavailable, retry later"
	}
	return "internal error"
}

// validationOf finds the ValidationError in err's chain, as a pointer or a value.
func validationOf(err error) (ValidationError, bool) {
	var ve *ValidationError
	if errors.As(err, &ve) && ve != nil {
		return *ve, true
	}
	var vv ValidationError
	if errors.As(err, &vv) {
		return vv, true
	}
	return ValidationError{}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// jsonSpace is the white space JSON allows between tokens.
const jsonSpace = " \t\r\n"

// decodeBody reads one JSON object of at most MaxBodyBytes into dst. The
// body must be valid UTF-8 with no escaped lone surrogate (encoding/json
// would store either as U+FFFD), an object (not null, an array or a
// scalar) with no unknown field, and nothing but white space after it.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return invalid("body", "larger than 64 KiB")
		}
		return invalid("body", "unreadable: "+err.Error())
	}
	if !utf8.Valid(body) {
		return invalid("body", "not valid UTF-8")
	}
	if hasLoneSurrogate(body) {
		return invalid("body", "a string escapes a lone UTF-16 surrogate (\\ud800 to \\udfff), which is no character")
	}
	value := bytes.TrimLeft(body, jsonSpace)
	if len(value) == 0 {
		return invalid("body", "empty; want a JSON object")
	}
	if value[0] != '{' {
		return invalid("body", "not a JSON object: got "+jsonKind(value[0]))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalid("body", "not a valid JSON object: "+err.Error())
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], jsonSpace); len(rest) > 0 {
		return invalid("body", "trailing data after the JSON object")
	}
	return nil
}

// jsonKind names the JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case 'n':
		return "null"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	}
	return "invalid JSON"
}

func pageOf(r *http.Request) (Page, error) {
	p := Page{Limit: defaultLimit}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"offset", &p.Offset}, {"limit", &p.Limit}} {
		v := r.URL.Query().Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return Page{}, invalid(f.name, "not an integer")
		}
		*f.dst = n
	}
	return p, nil
}

func user(r *http.Request) string { return r.Header.Get(UserHeader) }

// reply answers v with status, or err as the API's error when err is set.
func (s *Service) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

// decodeChecked decodes the body into dst, unless the request's ids already
// failed: then the body is not read and that failure is the answer.
func decodeChecked(w http.ResponseWriter, r *http.Request, idErr error, dst any) error {
	if idErr != nil {
		return idErr
	}
	return decodeBody(w, r, dst)
}

func (s *Service) httpListThreads(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	var ts []Thread
	if err == nil {
		ts, err = s.ListThreads(r.Context(), user(r), p)
	}
	s.reply(w, r, http.StatusOK, map[string]any{"threads": ts}, err)
}

func (s *Service) httpCreateThread(w http.ResponseWriter, r *http.Request) {
	var in CreateThreadInput
	var t Thread
	err := decodeChecked(w, r, checkUserID(user(r)), &in)
	if err == nil {
		t, err = s.CreateThread(r.Context(), user(r), in)
	}
	s.reply(w, r, http.StatusCreated, t, err)
}

func (s *Service) httpGetThread(w http.ResponseWriter, r *http.Request) {
	t, err := s.GetThread(r.Context(), user(r), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, t, err)
}

func (s *Service) httpUpdateThread(w http.ResponseWriter, r *http.Request) {
	var in UpdateThreadInput
	var t Thread
	err := decodeChecked(w, r, checkOwnerAndThread(user(r), r.PathValue("id")), &in)
	if err == nil {
		t, err = s.UpdateThread(r.Context(), user(r), r.PathValue("id"), in)
	}
	s.reply(w, r, http.StatusOK, t, err)
}

func (s *Service) httpDeleteThread(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteThread(r.Context(), user(r), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) httpAutoRename(w http.ResponseWriter, r *http.Request) {
	t, err := s.AutoRename(r.Context(), user(r), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, t, err)
}

func (s *Service) httpGetMessages(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	var ms []Message
	if err == nil {
		ms, err = s.GetMessages(r.Context(), user(r), r.PathValue("id"), p)
	}
	s.reply(w, r, http.StatusOK, map[string]any{"messages": ms}, err)
}

func (s *Service) httpSendMessage(w http.ResponseWriter, r *http.Request) {
	var in SendMessageInput
	var m Message
	err := decodeChecked(w, r, checkOwnerAndThread(user(r), r.PathValue("id")), &in)
	if err == nil {
		m, err = s.SendMessage(r.Context(), user(r), r.PathValue("id"), in)
	}
	s.reply(w, r, http.StatusCreated, m, err)
}
