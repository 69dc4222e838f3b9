package webhook_test

import (
	"fmt"
	"time"

	"github.com/oneshot-dev/oneshot/webhook"
)

// A receiver checks each delivery against the raw body and the secret it
// shares with the deployment (ONESHOT_WEBHOOK_SECRET), and refuses old ones.
func ExampleVerify() {
	secret := []byte("whsec_example")
	body := []byte(`{"id":"evt_1","type":"agent.run.completed","createdAt":"2026-01-01T00:00:00Z","data":{"id":"run_1","status":"completed"}}`)
	sent := time.Unix(1767225600, 0)

	// What the worker puts in the X-Oneshot-Signature header:
	header := webhook.Sign(secret, sent, body)
	fmt.Println(header[:13])

	// What the receiver does with the request:
	fmt.Println(webhook.Verify(secret, header, body, 5*time.Minute, sent.Add(time.Second)))
	fmt.Println(webhook.Verify(secret, header, body, 5*time.Minute, sent.Add(time.Hour)))
	// Output:
	// t=1767225600,
	// <nil>
	// webhook signature does not verify
}
