package message

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Limits on contacts messages. The API documents the card's fields
// (on-prem reference §2.1, Cloud contacts object: name.formatted_name
// required, birthday YYYY-MM-DD) but no counts or lengths; openwaba bounds
// them so that a card fits a message.
const (
	MaxContactCards   = 20  // cards in one message
	MaxContactEntries = 20  // phones, emails, addresses or urls of one card
	MaxContactField   = 512 // characters of any one field
)

// The API's contact card, sent and received; names are the API's.
type (
	contactCard struct {
		Addresses []contactAddress `json:"addresses,omitempty"`
		Birthday  string           `json:"birthday,omitempty"`
		Emails    []contactEmail   `json:"emails,omitempty"`
		Name      contactName      `json:"name"`
		Org       *contactOrg      `json:"org,omitempty"`
		Phones    []contactPhone   `json:"phones,omitempty"`
		URLs      []contactURL     `json:"urls,omitempty"`
	}
	contactName struct {
		FormattedName string `json:"formatted_name"`
		FirstName     string `json:"first_name,omitempty"`
		LastName      string `json:"last_name,omitempty"`
		MiddleName    string `json:"middle_name,omitempty"`
		Suffix        string `json:"suffix,omitempty"`
		Prefix        string `json:"prefix,omitempty"`
	}
	contactPhone struct {
		Phone string `json:"phone,omitempty"`
		Type  string `json:"type,omitempty"`
		WaID  string `json:"wa_id,omitempty"`
	}
	contactEmail struct {
		Email string `json:"email,omitempty"`
		Type  string `json:"type,omitempty"`
	}
	contactAddress struct {
		Street      string `json:"street,omitempty"`
		City        string `json:"city,omitempty"`
		State       string `json:"state,omitempty"`
		Zip         string `json:"zip,omitempty"`
		Country     string `json:"country,omitempty"`
		CountryCode string `json:"country_code,omitempty"`
		Type        string `json:"type,omitempty"`
	}
	contactOrg struct {
		Company    string `json:"company,omitempty"`
		Department string `json:"department,omitempty"`
		Title      string `json:"title,omitempty"`
	}
	contactURL struct {
		URL  string `json:"url,omitempty"`
		Type string `json:"type,omitempty"`
	}
)

var contactsType = Type{
	Name: "contacts",
	Kind: "contacts",
	Of:   func(c *messagev1.Content) bool { return c.GetContacts() != nil },
	Parse: func(top body.Object) (*messagev1.Content, error) {
		return parseContacts(top.Raw("contacts"))
	},
	Check:   func(c *messagev1.Content) error { return checkContacts(c.GetContacts()) },
	Show:    func(c *messagev1.Content) any { return showContacts(c.GetContacts()) },
	Webhook: func(c *messagev1.Content) (string, any) { return "contacts", showContacts(c.GetContacts()) },
	Terminal: func(c *messagev1.Content) string {
		var lines []string
		for _, k := range c.GetContacts().GetCards() {
			line := "[contact] " + k.GetName().GetFormattedName()
			for _, p := range k.GetPhones() {
				line += " " + p.Phone
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n")
	},
	Compose: parseContacts,
}

// parseContacts decodes the contacts array (the whole value of
// "contacts").
func parseContacts(raw json.RawMessage) (*messagev1.Content, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errcode.New(errcode.Invalid, "contacts must be an array of contact cards")
	}
	if len(items) == 0 {
		return nil, errcode.New(errcode.Missing, "contacts must have at least one contact card")
	}
	if len(items) > MaxContactCards {
		return nil, errcode.New(errcode.Invalid, "contacts has %d cards, more than %d", len(items), MaxContactCards)
	}
	out := &messagev1.Contacts{}
	for i, it := range items {
		o, err := body.Parse(fmt.Sprintf("contacts[%d].", i), it, "addresses", "birthday", "emails", "name", "org", "phones", "urls")
		if err != nil {
			return nil, err
		}
		card, err := parseCard(o)
		if err != nil {
			return nil, err
		}
		out.Cards = append(out.Cards, card)
	}
	return &messagev1.Content{Body: &messagev1.Content_Contacts{Contacts: out}}, nil
}

func parseCard(o body.Object) (*messagev1.ContactCard, error) {
	card := &messagev1.ContactCard{}
	name, present, err := body.Nested(o, "name", "formatted_name", "first_name", "last_name", "middle_name", "suffix", "prefix")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, errcode.New(errcode.Missing, "%sname is required", o.Path)
	}
	card.Name = &messagev1.ContactName{}
	if err := stringFields(name, []string{"formatted_name", "first_name", "last_name", "middle_name", "suffix", "prefix"},
		&card.Name.FormattedName, &card.Name.FirstName, &card.Name.LastName, &card.Name.MiddleName, &card.Name.Suffix, &card.Name.Prefix); err != nil {
		return nil, err
	}
	if card.Birthday, err = body.String(o, "birthday"); err != nil {
		return nil, err
	}
	if err := eachObject(o, "phones", []string{"phone", "type", "wa_id"}, func(e body.Object) error {
		p := &messagev1.ContactPhone{}
		card.Phones = append(card.Phones, p)
		return stringFields(e, []string{"phone", "type", "wa_id"}, &p.Phone, &p.Type, &p.WaId)
	}); err != nil {
		return nil, err
	}
	if err := eachObject(o, "emails", []string{"email", "type"}, func(e body.Object) error {
		m := &messagev1.ContactEmail{}
		card.Emails = append(card.Emails, m)
		return stringFields(e, []string{"email", "type"}, &m.Email, &m.Type)
	}); err != nil {
		return nil, err
	}
	addrFields := []string{"street", "city", "state", "zip", "country", "country_code", "type"}
	if err := eachObject(o, "addresses", addrFields, func(e body.Object) error {
		a := &messagev1.ContactAddress{}
		card.Addresses = append(card.Addresses, a)
		return stringFields(e, addrFields, &a.Street, &a.City, &a.State, &a.Zip, &a.Country, &a.CountryCode, &a.Type)
	}); err != nil {
		return nil, err
	}
	if err := eachObject(o, "urls", []string{"url", "type"}, func(e body.Object) error {
		u := &messagev1.ContactURL{}
		card.Urls = append(card.Urls, u)
		return stringFields(e, []string{"url", "type"}, &u.Url, &u.Type)
	}); err != nil {
		return nil, err
	}
	org, present, err := body.Nested(o, "org", "company", "department", "title")
	if err != nil {
		return nil, err
	}
	if present {
		card.Org = &messagev1.ContactOrg{}
		if err := stringFields(org, []string{"company", "department", "title"}, &card.Org.Company, &card.Org.Department, &card.Org.Title); err != nil {
			return nil, err
		}
	}
	return card, nil
}

// stringFields reads the string fields names of o into dsts.
func stringFields(o body.Object, names []string, dsts ...*string) error {
	for i, n := range names {
		v, err := body.String(o, n)
		if err != nil {
			return err
		}
		*dsts[i] = v
	}
	return nil
}

// eachObject parses every element of the array o[name] as an object with
// the allowed keys.
func eachObject(o body.Object, name string, allowed []string, f func(body.Object) error) error {
	items, _, err := body.Array(o, name)
	if err != nil {
		return err
	}
	if len(items) > MaxContactEntries {
		return errcode.New(errcode.Invalid, "%s%s has %d entries, more than %d", o.Path, name, len(items), MaxContactEntries)
	}
	for i, it := range items {
		e, err := body.Parse(body.Elem(o, name, i), it, allowed...)
		if err != nil {
			return err
		}
		if err := f(e); err != nil {
			return err
		}
	}
	return nil
}

func checkContacts(cs *messagev1.Contacts) error {
	cards := cs.GetCards()
	switch {
	case len(cards) == 0:
		return errcode.New(errcode.Missing, "contacts must have at least one contact card")
	case len(cards) > MaxContactCards:
		return errcode.New(errcode.Invalid, "contacts has %d cards, more than %d", len(cards), MaxContactCards)
	}
	for i, k := range cards {
		p := fmt.Sprintf("contacts[%d].", i)
		if strings.TrimSpace(k.GetName().GetFormattedName()) == "" {
			return errcode.New(errcode.Missing, "%sname.formatted_name is required", p)
		}
		if k.Birthday != "" {
			if _, err := time.Parse(time.DateOnly, k.Birthday); err != nil {
				return errcode.New(errcode.Invalid, "%sbirthday must be a date as YYYY-MM-DD", p)
			}
		}
		for _, n := range []int{len(k.Phones), len(k.Emails), len(k.Addresses), len(k.Urls)} {
			if n > MaxContactEntries {
				return errcode.New(errcode.Invalid, "%s has more than %d phones, emails, addresses or urls", strings.TrimSuffix(p, "."), MaxContactEntries)
			}
		}
		for j, ph := range k.Phones {
			if ph.WaId != "" && !phone.Valid(ph.WaId) {
				return errcode.New(errcode.Invalid, "%sphones[%d].wa_id must be 5 to 20 digits", p, j)
			}
		}
		if err := checkLengths(p, k); err != nil {
			return err
		}
	}
	return nil
}

// checkLengths bounds every string of a card.
func checkLengths(path string, k *messagev1.ContactCard) error {
	var fields []string
	n := k.GetName()
	fields = append(fields, n.GetFormattedName(), n.GetFirstName(), n.GetLastName(), n.GetMiddleName(), n.GetSuffix(), n.GetPrefix(), k.Birthday)
	for _, p := range k.Phones {
		fields = append(fields, p.Phone, p.Type, p.WaId)
	}
	for _, e := range k.Emails {
		fields = append(fields, e.Email, e.Type)
	}
	for _, a := range k.Addresses {
		fields = append(fields, a.Street, a.City, a.State, a.Zip, a.Country, a.CountryCode, a.Type)
	}
	for _, u := range k.Urls {
		fields = append(fields, u.Url, u.Type)
	}
	if o := k.GetOrg(); o != nil {
		fields = append(fields, o.Company, o.Department, o.Title)
	}
	for _, f := range fields {
		if utf8.RuneCountInString(f) > MaxContactField {
			return errcode.New(errcode.Invalid, "%s has a field longer than %d characters", strings.TrimSuffix(path, "."), MaxContactField)
		}
	}
	return nil
}

func showContacts(cs *messagev1.Contacts) []contactCard {
	out := make([]contactCard, 0, len(cs.GetCards()))
	for _, k := range cs.GetCards() {
		n := k.GetName()
		c := contactCard{Birthday: k.Birthday, Name: contactName{n.GetFormattedName(), n.GetFirstName(), n.GetLastName(), n.GetMiddleName(), n.GetSuffix(), n.GetPrefix()}}
		for _, p := range k.Phones {
			c.Phones = append(c.Phones, contactPhone{p.Phone, p.Type, p.WaId})
		}
		for _, e := range k.Emails {
			c.Emails = append(c.Emails, contactEmail{e.Email, e.Type})
		}
		for _, a := range k.Addresses {
			c.Addresses = append(c.Addresses, contactAddress{a.Street, a.City, a.State, a.Zip, a.Country, a.CountryCode, a.Type})
		}
		for _, u := range k.Urls {
			c.URLs = append(c.URLs, contactURL{u.Url, u.Type})
		}
		if o := k.GetOrg(); o != nil {
			c.Org = &contactOrg{o.Company, o.Department, o.Title}
		}
		out = append(out, c)
	}
	return out
}
