package api

import "github.com/labstack/echo/v4"

// runRoutes adds the run lifecycle routes beyond execute, status and details.
func (s *Server) runRoutes(e *echo.Echo) {}
