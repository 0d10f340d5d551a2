package message

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Limits on a location. Latitude and longitude are required and in range
// (on-prem reference §2.1, Cloud location object); neither API documents a
// length for name or address, so openwaba bounds them at 1000 characters.
const (
	MaxLocationName    = 1000
	MaxLocationAddress = 1000
)

// locationObject is the API's location object, sent and received.
type locationObject struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
}

var locationFields = []string{"latitude", "longitude", "name", "address"}

var locationType = Type{
	Name: "location",
	Kind: "location",
	Of:   func(c *messagev1.Content) bool { return c.GetLocation() != nil },
	Parse: func(top body.Object) (*messagev1.Content, error) {
		o, _, err := body.Nested(top, "location", locationFields...)
		if err != nil {
			return nil, err
		}
		return parseLocation(o)
	},
	Check: func(c *messagev1.Content) error {
		l := c.GetLocation()
		switch {
		case l.Latitude < -90 || l.Latitude > 90:
			return errcode.New(errcode.Invalid, "location.latitude must be between -90 and 90")
		case l.Longitude < -180 || l.Longitude > 180:
			return errcode.New(errcode.Invalid, "location.longitude must be between -180 and 180")
		case utf8.RuneCountInString(l.Name) > MaxLocationName:
			return errcode.New(errcode.Invalid, "location.name is longer than %d characters", MaxLocationName)
		case utf8.RuneCountInString(l.Address) > MaxLocationAddress:
			return errcode.New(errcode.Invalid, "location.address is longer than %d characters", MaxLocationAddress)
		}
		return nil
	},
	Show:    func(c *messagev1.Content) any { return showLocation(c.GetLocation()) },
	Webhook: func(c *messagev1.Content) (string, any) { return "location", showLocation(c.GetLocation()) },
	Terminal: func(c *messagev1.Content) string {
		l := c.GetLocation()
		s := fmt.Sprintf("[location] %.6f, %.6f", l.Latitude, l.Longitude)
		if l.Name != "" {
			s += " " + l.Name
		}
		if l.Address != "" {
			s += " (" + l.Address + ")"
		}
		return s
	},
	Compose: func(raw json.RawMessage) (*messagev1.Content, error) {
		o, err := body.Parse("location.", raw, locationFields...)
		if err != nil {
			return nil, err
		}
		return parseLocation(o)
	},
}

func showLocation(l *messagev1.Location) locationObject {
	return locationObject{Latitude: l.GetLatitude(), Longitude: l.GetLongitude(), Name: l.GetName(), Address: l.GetAddress()}
}

func parseLocation(o body.Object) (*messagev1.Content, error) {
	l := &messagev1.Location{}
	var err error
	if l.Latitude, err = body.RequiredNumber(o, "latitude"); err != nil {
		return nil, err
	}
	if l.Longitude, err = body.RequiredNumber(o, "longitude"); err != nil {
		return nil, err
	}
	if l.Name, err = body.String(o, "name"); err != nil {
		return nil, err
	}
	if l.Address, err = body.String(o, "address"); err != nil {
		return nil, err
	}
	return &messagev1.Content{Body: &messagev1.Content_Location{Location: l}}, nil
}
