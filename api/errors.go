package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Error is an API error: the status to answer and the body's fields. Every
// error answer has the body {"error": {"message", "type", "code", "param"}}.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
	Param   string `json:"param,omitempty"` // the request field at fault
}

func (e *Error) Error() string { return e.Message }

// Error types, as in the reference API.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeNotFound       = "not_found_error"
	typeConflict       = "conflict_error"
	typeRateLimit      = "rate_limit_error"
	typeUnavailable    = "service_unavailable_error"
	typeAPI            = "api_error"
)

// invalid returns a 400 that names the field and says how to fix it.
func invalid(param, code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func notFound(what, id string) *Error {
	return &Error{Status: http.StatusNotFound, Type: typeNotFound, Code: "not_found", Message: fmt.Sprintf("%s %q not found", what, id)}
}

func unavailable(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "store_unavailable",
		Message: "the run store (Redis) is unavailable; retry shortly (" + err.Error() + ")"}
}

// errorHandler turns every error, Echo's own included, into the error body.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var apiErr *Error
		var httpErr *echo.HTTPError
		switch {
		case errors.As(err, &apiErr):
		case errors.As(err, &httpErr):
			apiErr = fromEcho(httpErr, c)
		default:
			log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
			apiErr = &Error{Status: http.StatusInternalServerError, Type: typeAPI, Code: "internal_error", Message: "internal error; the server log has the details"}
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(apiErr.Status)
		} else {
			err = c.JSON(apiErr.Status, map[string]*Error{"error": apiErr})
		}
		if err != nil {
			log.Debug("write error response", "err", err)
		}
	}
}

func fromEcho(e *echo.HTTPError, c echo.Context) *Error {
	out := &Error{Status: e.Code, Type: typeInvalidRequest, Message: fmt.Sprint(e.Message)}
	switch e.Code {
	case http.StatusNotFound:
		out.Type, out.Code = typeNotFound, "route_not_found"
		out.Message = fmt.Sprintf("no route %s %s", c.Request().Method, c.Request().URL.Path)
	case http.StatusMethodNotAllowed:
		out.Code = "method_not_allowed"
		out.Message = fmt.Sprintf("method %s is not allowed on %s", c.Request().Method, c.Request().URL.Path)
	case http.StatusRequestEntityTooLarge:
		out.Code = "body_too_large"
		out.Message = "the request body is larger than the server accepts (ONESHOT_BODY_LIMIT); send a smaller body"
	case http.StatusUnauthorized:
		out.Type, out.Code = typeAuthentication, "unauthorized"
	case http.StatusServiceUnavailable:
		out.Type, out.Code = typeUnavailable, "unavailable"
	default:
		if e.Code >= 500 {
			out.Type, out.Code = typeAPI, "internal_error"
		} else {
			out.Code = "bad_request"
		}
	}
	return out
}
