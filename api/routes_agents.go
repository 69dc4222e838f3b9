package api

import "github.com/labstack/echo/v4"

// agentRoutes adds the persistent agent routes.
func (s *Server) agentRoutes(e *echo.Echo) {}
