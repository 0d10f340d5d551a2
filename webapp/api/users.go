package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/webapp/auth"
)

// timeLayout is the on-prem timestamp format of expires_after and created_at.
const timeLayout = "2006-01-02 15:04:05+00:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

type metaOnly struct {
	Meta meta `json:"meta"`
}

type usersResponse[T any] struct {
	Users []T  `json:"users"`
	Meta  meta `json:"meta"`
}

type tokenItem struct {
	Token        string `json:"token"`
	ExpiresAfter string `json:"expires_after"`
}

type usernameItem struct {
	Username string `json:"username"`
}

type userItem struct {
	Roles    string `json:"ROLES"`
	Username string `json:"username"`
}

// fromAuth maps the auth package's errors.
func fromAuth(err error) error {
	var ie *auth.InvalidError
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &te):
		return tooManyRequests(te.RetryAfter, "too many failed logins for this user or from this address; retry later")
	case errors.Is(err, auth.ErrBusy):
		return tooManyRequests(time.Second, "too many logins in progress; retry later")
	case errors.As(err, &ie):
		return invalid("%s", ie.Error())
	case errors.Is(err, auth.ErrInvalidCredentials):
		return unauthorized("invalid username or password")
	case errors.Is(err, auth.ErrPasswordChangeRequired):
		return apiErr(http.StatusBadRequest, errcode.PasswordChange, `the password must be changed: send {"new_password":"..."} in the login body`)
	case errors.Is(err, auth.ErrUserExists):
		return apiErr(http.StatusConflict, errcode.Exists, "user already exists")
	case errors.Is(err, auth.ErrUserNotFound):
		return notFound("user not found")
	case errors.Is(err, auth.ErrAdminUndeletable):
		return forbidden("the admin user cannot be deleted")
	case errors.Is(err, auth.ErrAPIKeyNotFound):
		return notFound("API key not found")
	}
	return internal(err)
}

// login: POST /v1/users/login with HTTP Basic and an optional
// {"new_password": "..."} body.
func (s *Server) login(c echo.Context) error {
	username, password, ok := c.Request().BasicAuth()
	if !ok {
		return unauthorized("send the username and password with HTTP Basic authentication")
	}
	o, err := readObject(c, "new_password")
	if err != nil {
		return err
	}
	newPassword, _, err := field[string](o, "new_password")
	if err != nil {
		return err
	}
	tok, err := s.auth.Login(c.Request().Context(), c.RealIP(), username, password, newPassword)
	if err != nil {
		return fromAuth(err)
	}
	return c.JSON(http.StatusOK, usersResponse[tokenItem]{
		Users: []tokenItem{{Token: tok.Value, ExpiresAfter: formatTime(tok.ExpiresAt)}},
		Meta:  s.meta,
	})
}

// logout: POST /v1/users/logout revokes the presented token.
func (s *Server) logout(c echo.Context) error {
	if err := s.auth.RevokeToken(c.Request().Context(), principalOf(c).token); err != nil {
		return internal(err)
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// createUser: POST /v1/users (admin).
func (s *Server) createUser(c echo.Context) error {
	o, err := readObject(c, "username", "password")
	if err != nil {
		return err
	}
	username, err := requiredString(o, "username")
	if err != nil {
		return err
	}
	password, err := requiredString(o, "password")
	if err != nil {
		return err
	}
	if err := s.auth.CreateUser(c.Request().Context(), username, password); err != nil {
		return fromAuth(err)
	}
	return c.JSON(http.StatusCreated, usersResponse[usernameItem]{Users: []usernameItem{{Username: username}}, Meta: s.meta})
}

// selfOrAdmin refuses a user acting on another user unless it is the admin.
func selfOrAdmin(c echo.Context) (string, error) {
	p, username := principalOf(c), c.Param("username")
	if p.role != auth.RoleAdmin && p.username != username {
		return "", forbidden("only the admin may act on another user")
	}
	return username, nil
}

// getUser: GET /v1/users/{username} (admin, or the user itself).
func (s *Server) getUser(c echo.Context) error {
	username, err := selfOrAdmin(c)
	if err != nil {
		return err
	}
	u, err := s.auth.GetUser(c.Request().Context(), username)
	if err != nil {
		return fromAuth(err)
	}
	return c.JSON(http.StatusOK, usersResponse[userItem]{Users: []userItem{{Roles: "ROLE_" + string(u.Role), Username: u.Username}}, Meta: s.meta})
}

// updateUser: PUT /v1/users/{username} {"password": "..."} (admin, or the
// user itself). The user's other tokens are revoked.
func (s *Server) updateUser(c echo.Context) error {
	username, err := selfOrAdmin(c)
	if err != nil {
		return err
	}
	o, err := readObject(c, "password")
	if err != nil {
		return err
	}
	password, err := requiredString(o, "password")
	if err != nil {
		return err
	}
	keep := "" // a change by the admin revokes every token of the user
	if p := principalOf(c); p.username == username {
		keep = p.token // the user's own change keeps the session that made it
	}
	if err := s.auth.SetPassword(c.Request().Context(), username, password, keep); err != nil {
		return fromAuth(err)
	}
	return c.JSON(http.StatusOK, usersResponse[usernameItem]{Users: []usernameItem{{Username: username}}, Meta: s.meta})
}

// deleteUser: DELETE /v1/users/{username} (admin); the admin is undeletable.
func (s *Server) deleteUser(c echo.Context) error {
	username := c.Param("username")
	if err := s.auth.DeleteUser(c.Request().Context(), username); err != nil {
		return fromAuth(err)
	}
	return c.JSON(http.StatusOK, usersResponse[usernameItem]{Users: []usernameItem{{Username: username}}, Meta: s.meta})
}
