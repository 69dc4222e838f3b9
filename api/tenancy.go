package api

import "github.com/labstack/echo/v4"

// orgKey is the echo.Context key under which authentication stores the
// caller's organization.
const orgKey = "oneshot.org"

// orgOf returns the organization of the request's caller; "" when the server
// runs without API keys (open mode).
func orgOf(c echo.Context) string {
	org, _ := c.Get(orgKey).(string)
	return org
}

// authenticate resolves the caller's API key to its organization. Open mode:
// no keys configured, every request is of organization "".
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return next
}
