package webhook

import (
	"encoding/json"
	"testing"
)

// TestEventTopicAsStored: the topic and ref Enqueue takes from a typed
// payload are what topicOf reads from the stored JSON (the endpoints'
// filters and the delivery log's message id depend on them).
func TestEventTopicAsStored(t *testing.T) {
	text := InboundMessage{From: "15551234567", ID: "wamid.in", Timestamp: "1", Type: "text"}
	text.SetObject("text", map[string]string{"body": "hi"})
	events := []Event{
		StatusEvent(1, Status{ID: "wamid.out", RecipientID: "15551234567", Status: "delivered", Timestamp: "1"}),
		StatusEvent(1, Status{ID: "wamid.failed", Status: "failed"}),
		MessageEvent(1, Contact{}, text),
		IdentityChangedEvent(1, "15551234567", "sys.1", "abc", 1),
		{AccountID: 1, Kind: KindMessage, Payload: json.RawMessage(`{"message":{"id":"wamid.raw","type":"image"}}`)},
		{AccountID: 1, Kind: KindTemplateStatus, Payload: map[string]string{"event": "APPROVED"}},
	}
	want := [][2]string{{"statuses.delivered", "wamid.out"}, {"statuses.failed", "wamid.failed"}, {TopicMessages, "wamid.in"},
		{TopicSystem, "sys.1"}, {TopicMessages, "wamid.raw"}, {TopicTemplates, ""}}
	for i, e := range events {
		b, err := json.Marshal(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		topic, ref := e.topic(b)
		stored, storedRef := topicOf(e.Kind, b)
		if topic != stored || ref != storedRef {
			t.Errorf("event %d: typed topic %q/%q, from its JSON %q/%q", i, topic, ref, stored, storedRef)
		}
		if topic != want[i][0] || ref != want[i][1] {
			t.Errorf("event %d: topic %q/%q, want %q/%q", i, topic, ref, want[i][0], want[i][1])
		}
	}
}
