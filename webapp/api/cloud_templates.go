package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/graph"
	"github.com/openwaba/openwaba/api/template"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// Graph's message templates, over the same store as /v1/configs/templates
// (the network's): records carry Graph template ids (package api/graph).
//
//	GET    /{v}/{waba-id}/message_templates?name=&status=&category=&language=&limit=&after=
//	       → {data:[…], paging:{cursors:{before, after}, next?}}
//	POST   /{v}/{waba-id}/message_templates {name, language, category, components} → {id, status, category}
//	DELETE /{v}/{waba-id}/message_templates?name=[&hsm_id=] → {success:true}
//	GET    /{v}/{template-id} → the record
//	POST   /{v}/{template-id} {components?, category?} → {success, id, status, category}: reviewed again

// DefaultCloudTemplatePage is Graph's page size when limit is not given.
const DefaultCloudTemplatePage = 25

// wabaOf is the account id of the {id} segment, which must be a waba_id.
func wabaOf(c echo.Context) (int64, error) {
	id, k, n := pathID(c)
	if k != graph.WABA {
		return 0, noObject(c, id)
	}
	return n, nil
}

// graphRecord is a record with its Graph id.
func graphRecord(b []byte) (template.Template, error) {
	var t template.Template
	if err := json.Unmarshal(b, &t); err != nil {
		return t, internal(err)
	}
	t.ID = graph.TemplateID(t.ID)
	return t, nil
}

type templatesPage struct {
	Data   []template.Template `json:"data"`
	Paging paging              `json:"paging"`
}

// cloudListTemplates: GET /{v}/{waba-id}/message_templates.
func (s *Server) cloudListTemplates(c echo.Context) error {
	n, err := wabaOf(c)
	if err != nil {
		return err
	}
	q := c.QueryParams()
	req := &corev1.ListTemplatesRequest{Account: cloudAccount(c, n), Limit: DefaultCloudTemplatePage}
	if _, err := templateFilters(q, req); err != nil {
		return err
	}
	if v := q.Get("after"); v != "" {
		if len(v) > 64 || !printableASCII(v) {
			return invalid("after must be a cursor of paging.cursors.after")
		}
		req.After = v
	}
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > MaxTemplatePage {
			return invalid("limit must be a whole number from 1 to %d", MaxTemplatePage)
		}
		req.Limit = uint32(l)
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.ListTemplates, req)
	if err != nil {
		return err
	}
	out := templatesPage{Data: []template.Template{}}
	for _, b := range resp.TemplateJson {
		t, err := graphRecord(b)
		if err != nil {
			return err
		}
		out.Data = append(out.Data, t)
	}
	if len(out.Data) > 0 {
		out.Paging.Cursors.Before = out.Data[0].ID
		out.Paging.Cursors.After = resp.After
	}
	if resp.After != "" {
		u := *c.Request().URL
		qs := u.Query()
		qs.Set("after", resp.After)
		u.RawQuery = qs.Encode()
		out.Paging.Next = c.Scheme() + "://" + c.Request().Host + u.RequestURI()
	}
	return c.JSON(http.StatusOK, out)
}

type cloudTemplateCreated struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Category string `json:"category"`
}

// cloudCreateTemplate: POST /{v}/{waba-id}/message_templates.
func (s *Server) cloudCreateTemplate(c echo.Context) error {
	n, err := wabaOf(c)
	if err != nil {
		return err
	}
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
	resp, err := call(s, c, s.opts.CallTimeout, s.core.CreateTemplate, &corev1.CreateTemplateRequest{Account: cloudAccount(c, n), TemplateJson: b})
	if err != nil {
		return err
	}
	if len(resp.GetTemplateJson()) == 0 {
		return internal(errNoRecord)
	}
	rec, err := graphRecord(resp.TemplateJson[0])
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cloudTemplateCreated{ID: rec.ID, Status: rec.Status, Category: rec.Category})
}

// cloudDeleteTemplate: DELETE /{v}/{waba-id}/message_templates?name=
// [&hsm_id=]: every language of name, or the one hsm_id names.
func (s *Server) cloudDeleteTemplate(c echo.Context) error {
	n, err := wabaOf(c)
	if err != nil {
		return err
	}
	name := c.QueryParam("name")
	if name == "" {
		return missing("name is required")
	}
	if !template.ValidName(name) {
		return invalid("name must be a template name")
	}
	ref := cloudAccount(c, n)
	req := &corev1.DeleteTemplateRequest{Account: ref, Name: name}
	if hsm := c.QueryParam("hsm_id"); hsm != "" {
		k, tid := graph.Parse(hsm)
		if k != graph.Template {
			return noObject(c, hsm)
		}
		rec, err := s.templateByID(c, ref, tid)
		if err != nil {
			return err
		}
		if rec.Name != name {
			return invalid("hsm_id %s is not a template called %s", hsm, name)
		}
		req.Language = rec.Language
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.DeleteTemplate, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, successResponse{Success: true})
}

// templateByID reads one template by the network's id.
func (s *Server) templateByID(c echo.Context, ref *corev1.AccountRef, id int64) (template.Template, error) {
	resp, err := call(s, c, s.opts.CallTimeout, s.core.ListTemplates, &corev1.ListTemplatesRequest{Account: ref, Id: strconv.FormatInt(id, 10), Limit: 1})
	if err != nil {
		return template.Template{}, err
	}
	if len(resp.GetTemplateJson()) == 0 {
		return template.Template{}, noObject(c, graph.TemplateID(strconv.FormatInt(id, 10)))
	}
	return graphRecord(resp.TemplateJson[0])
}

// cloudWABATemplate: GET /{v}/{waba-id}/message_templates/{template-id}
// (as Kapso's SDK reads one).
func (s *Server) cloudWABATemplate(c echo.Context) error {
	n, err := wabaOf(c)
	if err != nil {
		return err
	}
	tid := c.Param("template")
	k, id := graph.Parse(tid)
	if k != graph.Template {
		return noObject(c, tid)
	}
	rec, err := s.templateByID(c, cloudAccount(c, n), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rec)
}

// cloudTemplate: GET /{v}/{template-id}, of the caller's number.
func (s *Server) cloudTemplate(c echo.Context, id int64) error {
	rec, err := s.templateByID(c, cloudAccount(c, 0), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rec)
}

// maxTemplateEdit bounds an edit body as a submission is.
const maxTemplateEdit = template.MaxJSON

type templateEdited struct {
	Success  bool   `json:"success"`
	ID       string `json:"id"`
	Status   string `json:"status"`
	Category string `json:"category"`
}

// cloudEditTemplate: POST /{v}/{template-id} {components?, category?}.
// The network checks the edited template as a submission and reviews it
// again.
func (s *Server) cloudEditTemplate(c echo.Context, id int64) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if len(b) > maxTemplateEdit {
		return apiErr(http.StatusRequestEntityTooLarge, errcode.TooLong, "a template is at most %d bytes of JSON", template.MaxJSON)
	}
	o, err := parseObject("", b, "components", "category")
	if err != nil {
		return err
	}
	if !o.Has("components") && !o.Has("category") {
		return missing("an edit needs components or category")
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.EditTemplate, &corev1.EditTemplateRequest{Account: cloudAccount(c, 0), Id: strconv.FormatInt(id, 10), TemplateJson: b})
	if err != nil {
		return err
	}
	if len(resp.GetTemplateJson()) == 0 {
		return internal(errNoRecord)
	}
	rec, err := graphRecord(resp.TemplateJson[0])
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, templateEdited{Success: true, ID: rec.ID, Status: rec.Status, Category: rec.Category})
}
