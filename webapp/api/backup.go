package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

type backupResponse struct {
	Settings struct {
		Data string `json:"data"`
	} `json:"settings"`
	Meta meta `json:"meta"`
}

// backup: POST /v1/settings/backup {"password"} (admin) answers
// {"settings":{"data":"<base64>"}}: the number's registration, keys,
// settings, profile and webhook endpoints, encrypted under the password
// (coreapp/backup).
func (s *Server) backup(c echo.Context) error {
	o, err := readObject(c, "password")
	if err != nil {
		return err
	}
	password, err := requiredString(o, "password")
	if err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.Backup, &corev1.BackupRequest{Account: principalOf(c).account(), Password: password})
	if err != nil {
		return err
	}
	out := backupResponse{Meta: s.meta}
	out.Settings.Data = resp.GetData()
	return c.JSON(http.StatusOK, out)
}

// restore: POST /v1/settings/restore {"password","data"} (admin) brings a
// backed-up number onto this deployment, registered and connected with the
// same keys; a wrong password or damaged data is 1009 and changes nothing.
func (s *Server) restore(c echo.Context) error {
	o, err := readObject(c, "password", "data")
	if err != nil {
		return err
	}
	password, err := requiredString(o, "password")
	if err != nil {
		return err
	}
	data, err := requiredString(o, "data")
	if err != nil {
		return err
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.Restore, &corev1.RestoreRequest{Password: password, Data: data}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}
