package message

import (
	"encoding/json"
	"unicode"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// maxEmojiBytes bounds one emoji: the longest sequences (a family with skin
// tones, joined by zero-width joiners) are under 40 bytes.
const maxEmojiBytes = 64

// reactionObject is the API's reaction object, sent and received. An empty
// emoji removes the sender's reaction (Cloud reaction messages; on-prem has
// the same object).
type reactionObject struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

var reactionType = Type{
	Name: "reaction",
	Kind: "reaction",
	Of:   func(c *messagev1.Content) bool { return c.GetReaction() != nil },
	Parse: func(top body.Object) (*messagev1.Content, error) {
		o, _, err := body.Nested(top, "reaction", "message_id", "emoji")
		if err != nil {
			return nil, err
		}
		return parseReaction(o)
	},
	Check: func(c *messagev1.Content) error {
		r := c.GetReaction()
		switch {
		case r.MessageId == "":
			return errcode.New(errcode.Missing, "reaction.message_id is required")
		case len(r.MessageId) > maxContextID || !printable(r.MessageId):
			return errcode.New(errcode.Invalid, "reaction.message_id must be a message id of at most %d printable characters", maxContextID)
		case r.Emoji != "" && !OneEmoji(r.Emoji):
			return errcode.New(errcode.Invalid, "reaction.emoji must be one emoji (or empty, to remove the reaction)")
		}
		return nil
	},
	Show: func(c *messagev1.Content) any { return showReaction(c.GetReaction()) },
	Terminal: func(c *messagev1.Content) string {
		r := c.GetReaction()
		if r.Emoji == "" {
			return "[reaction removed from " + r.MessageId + "]"
		}
		return "[reacted " + r.Emoji + " to " + r.MessageId + "]"
	},
	Webhook: func(c *messagev1.Content) (string, any) { return "reaction", showReaction(c.GetReaction()) },
	Compose: func(raw json.RawMessage) (*messagev1.Content, error) {
		o, err := body.Parse("reaction.", raw, "message_id", "emoji")
		if err != nil {
			return nil, err
		}
		return parseReaction(o)
	},
}

func parseReaction(o body.Object) (*messagev1.Content, error) {
	r := &messagev1.Reaction{}
	var err error
	if r.MessageId, err = body.RequiredString(o, "message_id"); err != nil {
		return nil, err
	}
	if r.Emoji, _, err = body.Field[string](o, "emoji"); err != nil {
		return nil, err
	}
	return &messagev1.Content{Body: &messagev1.Content_Reaction{Reaction: r}}, nil
}

func showReaction(r *messagev1.Reaction) reactionObject {
	return reactionObject{MessageID: r.GetMessageId(), Emoji: r.GetEmoji()}
}

// OneEmoji reports whether s is a single emoji: one pictographic
// character, optionally followed by variation selectors, skin-tone
// modifiers, a keycap, tag characters or zero-width-joiner sequences of
// more pictographs; or a pair of regional indicators (a flag); or a digit,
// # or * with a keycap.
func OneEmoji(s string) bool {
	if s == "" || len(s) > maxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	rs := []rune(s)
	if len(rs) == 2 && regional(rs[0]) && regional(rs[1]) {
		return true
	}
	if (rs[0] >= '0' && rs[0] <= '9' || rs[0] == '#' || rs[0] == '*') && len(rs) >= 2 {
		rest := rs[1:]
		if rest[0] == 0xFE0F {
			rest = rest[1:]
		}
		return len(rest) == 1 && rest[0] == 0x20E3
	}
	pictographs := 0
	expectPict := true
	for _, r := range rs {
		switch {
		case expectPict:
			if !pictograph(r) {
				return false
			}
			pictographs++
			expectPict = false
		case r == 0x200D: // zero-width joiner: another pictograph follows
			expectPict = true
		case r == 0xFE0F || r == 0xFE0E, r >= 0x1F3FB && r <= 0x1F3FF, r >= 0xE0020 && r <= 0xE007F, r == 0x20E3:
		default:
			return false
		}
	}
	return pictographs > 0 && !expectPict
}

func regional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

// pictograph approximates Unicode's Extended_Pictographic: the emoji
// blocks and the symbols that have emoji presentations.
func pictograph(r rune) bool {
	if regional(r) {
		return false // only as a pair (a flag)
	}
	switch {
	case r >= 0x1F000 && r <= 0x1FAFF, // mahjong … symbols and pictographs extended-A
		r >= 0x2600 && r <= 0x27BF, // miscellaneous symbols, dingbats
		r >= 0x2300 && r <= 0x23FF, // technical (⌚, ⏰, …)
		r >= 0x2B00 && r <= 0x2BFF, // arrows (⬆, ⭐, …)
		r >= 0x2190 && r <= 0x21FF, // arrows (↔, …)
		r >= 0x25A0 && r <= 0x25FF, // geometric shapes
		r == 0x00A9 || r == 0x00AE || r == 0x203C || r == 0x2049 || r == 0x2122 || r == 0x2139 || r == 0x3030 || r == 0x303D || r == 0x3297 || r == 0x3299:
		return true
	}
	return unicode.Is(unicode.So, r) && r > 0x2000
}
