module github.com/openwaba/openwaba/e2e

go 1.26.8

require (
	github.com/openwaba/openwaba/api v0.0.0
	github.com/openwaba/openwaba/chatd v0.0.0
	github.com/openwaba/openwaba/db v0.0.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/labstack/echo/v4 v4.16.0 // indirect
	github.com/labstack/gommon v0.5.0 // indirect
	github.com/mattn/go-colorable v0.1.15 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasttemplate v1.2.2 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261005182115-fad411399dd8 // indirect
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/flynn/noise v1.1.0 // indirect
	github.com/go-sql-driver/mysql v1.10.1 // indirect
	github.com/mfridman/interpolate v0.0.2 // indirect
	github.com/openwaba/openwaba/coreapp v0.0.0
	github.com/openwaba/openwaba/media v0.0.0
	github.com/openwaba/openwaba/proto v0.0.0
	github.com/openwaba/openwaba/webapp v0.0.0
	github.com/pressly/goose/v3 v3.29.0 // indirect
	github.com/sethvargo/go-retry v0.5.0 // indirect
	go.mau.fi/libsignal v0.2.2 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	golang.org/x/crypto v0.58.0
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace (
	github.com/openwaba/openwaba/chatd => ../chatd
	github.com/openwaba/openwaba/coreapp => ../coreapp
	github.com/openwaba/openwaba/db => ../db
	github.com/openwaba/openwaba/proto => ../proto
	github.com/openwaba/openwaba/webapp => ../webapp
)

replace github.com/openwaba/openwaba/media => ../media

replace github.com/openwaba/openwaba/api => ../api
