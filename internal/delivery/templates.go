package delivery

import (
	"bytes"
	"embed"
	"fmt"
	"html"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates
var builtinTemplates embed.FS

// Template files. Each may be overridden by a file of the same name in the templates
// folder (a ConfigMap mounted there): subject.txt and body.txt are Go text templates,
// body.html an html/template (values are escaped). All see the Invite's fields and
// .Expires, the expiry in words. The bodies must name the inviter (.Inviter), and should say
// what accepting removes (.Replaces) as the built-in ones do.
const (
	subjectFile  = "subject.txt"
	textBodyFile = "body.txt"
	htmlBodyFile = "body.html"
)

// mailData is what the templates see.
type mailData struct {
	Invite
	Expires string
}

// message is a rendered mail.
type message struct {
	subject, text, html string
}

// render fills the templates, reading overrides from dir (if set) on every call so that an
// updated ConfigMap takes effect without a restart.
func render(dir string, invite Invite) (message, error) {
	data := mailData{Invite: invite, Expires: invite.ExpiresAt.UTC().Format(time.RFC1123)}
	var m message
	var err error
	if m.subject, err = renderText(dir, subjectFile, data); err != nil {
		return m, err
	}
	// A subject is one line: a template's trailing newline or a stray line break would
	// otherwise end up in the header.
	m.subject = strings.Join(strings.Fields(m.subject), " ")
	if m.text, err = renderText(dir, textBodyFile, data); err != nil {
		return m, err
	}
	if m.html, err = renderHTML(dir, data); err != nil {
		return m, err
	}
	return m, namesInviter(m, invite.Inviter)
}

// namesInviter refuses a mail whose text or HTML does not name the inviter, as a template
// override might forget to: mail that does not say who sent it is how the company's sender
// gets used for phishing.
func namesInviter(m message, inviter string) error {
	if !strings.Contains(m.text, inviter) {
		return fmt.Errorf("%s does not name the inviter (.Inviter): every invitation mail must", textBodyFile)
	}
	if !strings.Contains(html.UnescapeString(m.html), inviter) {
		return fmt.Errorf("%s does not name the inviter (.Inviter): every invitation mail must", htmlBodyFile)
	}
	return nil
}

func renderText(dir, name string, data mailData) (string, error) {
	src, err := templateSource(dir, name)
	if err != nil {
		return "", err
	}
	tpl, err := texttemplate.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = tpl.Execute(&out, data)
	return out.String(), err
}

func renderHTML(dir string, data mailData) (string, error) {
	src, err := templateSource(dir, htmlBodyFile)
	if err != nil {
		return "", err
	}
	tpl, err := htmltemplate.New(htmlBodyFile).Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = tpl.Execute(&out, data)
	return out.String(), err
}

// templateSource prefers the override in dir and falls back to the built-in template.
func templateSource(dir, name string) (string, error) {
	if dir != "" {
		data, err := os.ReadFile(filepath.Join(dir, name)) //nolint:gosec // the operator's own configuration folder
		if err == nil {
			return string(data), nil
		}
		if !os.IsNotExist(err) {
			return "", err
		}
	}
	data, err := builtinTemplates.ReadFile("templates/" + name)
	return string(data), err
}
