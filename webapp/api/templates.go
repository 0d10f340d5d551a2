package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/template"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// Message templates of the number (360dialog's on-prem routes; the records
// are the Graph API's message_templates):
//
//	POST   /v1/configs/templates              {name, language, category, components} → 201 {id, status, category}
//	GET    /v1/configs/templates?name=&status=&category=&language=&limit=&offset=
//	       → {count, filters, limit, offset, sort, total, namespace, waba_templates:[…]}
//	DELETE /v1/configs/templates/{name}[?language=] → {success: true, deleted: [{id, name, language}]}
//
// The list's records carry the number's namespace (which on-prem template
// messages name) and the status in lower case, as 360dialog lists them.

// MaxTemplatePage is the largest page of GET /v1/configs/templates.
const MaxTemplatePage = 1000

type templateCreated struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Category string `json:"category"`
	Meta     meta   `json:"meta"`
}

// createTemplate: POST /v1/configs/templates (admin or API key). The
// submission is checked here (the rules of package api/template), and again
// by the network.
func (s *Server) createTemplate(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if len(b) > template.MaxJSON {
		return apiErr(http.StatusRequestEntityTooLarge, errcode.TooLong, "a template is at most %d bytes of JSON", template.MaxJSON)
	}
	if _, err := template.Parse(b); err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.CreateTemplate, &corev1.CreateTemplateRequest{Account: principalOf(c).account(), TemplateJson: b})
	if err != nil {
		return err
	}
	rec, err := firstRecord(resp)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, templateCreated{ID: rec.ID, Status: rec.Status, Category: rec.Category, Meta: s.meta})
}

var errNoRecord = errors.New("coreapp answered without a template record")

func firstRecord(resp *corev1.TemplateRecords) (template.Template, error) {
	var t template.Template
	if len(resp.GetTemplateJson()) == 0 {
		return t, internal(errNoRecord)
	}
	if err := json.Unmarshal(resp.TemplateJson[0], &t); err != nil {
		return t, internal(err)
	}
	return t, nil
}

// listedTemplate is a record of the list: the Graph record, the namespace,
// the status in lower case.
type listedTemplate struct {
	template.Template
	Namespace string `json:"namespace"`
}

type templateList struct {
	Count     int               `json:"count"`
	Filters   map[string]string `json:"filters"`
	Limit     int               `json:"limit"`
	Offset    int               `json:"offset"`
	Sort      []string          `json:"sort"`
	Total     int               `json:"total"`
	Namespace string            `json:"namespace"`
	Templates []listedTemplate  `json:"waba_templates"`
	Meta      meta              `json:"meta"`
}

// templateFilters reads the list filters both template lists take (name,
// status, category, language) into req and returns those given.
func templateFilters(q url.Values, req *corev1.ListTemplatesRequest) (map[string]string, error) {
	filters := map[string]string{}
	for _, f := range []struct {
		name string
		dst  *string
		ok   func(string) bool
		want string
	}{
		{"name", &req.Name, template.ValidName, "a template name"},
		{"status", &req.Status, func(v string) bool { return slices.Contains(template.Statuses, strings.ToUpper(v)) }, "one of " + strings.Join(template.Statuses, ", ")},
		{"category", &req.Category, func(v string) bool { return slices.Contains(template.Categories, strings.ToUpper(v)) }, "one of " + strings.Join(template.Categories, ", ")},
		{"language", &req.Language, template.ValidLanguage, `a language code such as "en_US"`},
	} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		if !f.ok(v) {
			return nil, invalid("%s must be %s", f.name, f.want)
		}
		*f.dst, filters[f.name] = v, v
	}
	return filters, nil
}

// listTemplates: GET /v1/configs/templates (admin or API key).
func (s *Server) listTemplates(c echo.Context) error {
	q := c.QueryParams()
	req := &corev1.ListTemplatesRequest{Account: principalOf(c).account()}
	filters, err := templateFilters(q, req)
	if err != nil {
		return err
	}
	limit, offset := MaxTemplatePage, 0
	for name, dst := range map[string]*int{"limit": &limit, "offset": &offset} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || (name == "limit" && (n < 1 || n > MaxTemplatePage)) || n > 1_000_000 {
			if name == "limit" {
				return invalid("limit must be a whole number from 1 to %d", MaxTemplatePage)
			}
			return invalid("offset must be a whole number, 0 or more")
		}
		*dst = n
	}
	req.Limit, req.Offset = uint32(limit), uint32(offset)
	resp, err := call(s, c, s.opts.CallTimeout, s.core.ListTemplates, req)
	if err != nil {
		return err
	}
	out := templateList{Filters: filters, Limit: limit, Offset: offset, Sort: []string{"id"}, Total: int(resp.Total),
		Namespace: resp.Namespace, Templates: []listedTemplate{}, Meta: s.meta}
	for _, b := range resp.TemplateJson {
		var t template.Template
		if err := json.Unmarshal(b, &t); err != nil {
			return internal(err)
		}
		t.Status = strings.ToLower(t.Status)
		out.Templates = append(out.Templates, listedTemplate{t, resp.Namespace})
	}
	out.Count = len(out.Templates)
	return c.JSON(http.StatusOK, out)
}

type deletedTemplate struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Language string `json:"language"`
}

type templatesDeleted struct {
	Success bool              `json:"success"`
	Deleted []deletedTemplate `json:"deleted"`
	Meta    meta              `json:"meta"`
}

// deleteTemplate: DELETE /v1/configs/templates/{name}[?language=] (admin
// or API key): every language of the template, or one.
func (s *Server) deleteTemplate(c echo.Context) error {
	name, lang := c.Param("name"), c.QueryParam("language")
	if !template.ValidName(name) {
		return notFound("no template named %q", name)
	}
	if lang != "" && !template.ValidLanguage(lang) {
		return invalid(`language must be a language code such as "en_US"`)
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.DeleteTemplate, &corev1.DeleteTemplateRequest{Account: principalOf(c).account(), Name: name, Language: lang})
	if err != nil {
		return err
	}
	out := templatesDeleted{Success: true, Deleted: []deletedTemplate{}, Meta: s.meta}
	for _, b := range resp.TemplateJson {
		var t template.Template
		if err := json.Unmarshal(b, &t); err != nil {
			return internal(err)
		}
		out.Deleted = append(out.Deleted, deletedTemplate{t.ID, t.Name, t.Language})
	}
	return c.JSON(http.StatusOK, out)
}
