package amqp

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"os"
	"testing"
)

// rabbitSpec is RabbitMQ's extended 0-9-1 spec as Debian's amqp-specs
// package ships it; scripts/deps lists the package.
const rabbitSpec = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"

type xmlSpec struct {
	Domains []struct {
		Name string `xml:"name,attr"`
		Type string `xml:"type,attr"`
	} `xml:"domain"`
	Classes []struct {
		Name    string `xml:"name,attr"`
		Index   uint16 `xml:"index,attr"`
		Methods []struct {
			Name    string `xml:"name,attr"`
			Index   uint16 `xml:"index,attr"`
			Content string `xml:"content,attr"`
			Fields  []struct {
				Name   string `xml:"name,attr"`
				Domain string `xml:"domain,attr"`
				Type   string `xml:"type,attr"`
			} `xml:"field"`
		} `xml:"method"`
	} `xml:"class"`
}

// TestMethodsMatchRabbitSpec encodes every method of RabbitMQ's spec field
// by field, as the XML describes it, and checks that the generated codec
// decodes it to the right method and writes the same bytes back.
func TestMethodsMatchRabbitSpec(t *testing.T) {
	raw, err := os.ReadFile(rabbitSpec)
	if err != nil {
		t.Fatalf("read RabbitMQ's spec (Debian package amqp-specs): %v", err)
	}
	var spec xmlSpec
	if err := xml.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("parse %s: %v", rabbitSpec, err)
	}
	domains := map[string]string{}
	for _, d := range spec.Domains {
		domains[d.Name] = d.Type
	}
	count := 0
	for _, c := range spec.Classes {
		for _, m := range c.Methods {
			count++
			name := c.Name + "." + m.Name
			var p []byte
			p = binary.BigEndian.AppendUint16(p, c.Index)
			p = binary.BigEndian.AppendUint16(p, m.Index)
			bits, nbits := byte(0), 0
			flush := func() {
				if nbits > 0 {
					p = append(p, bits)
					bits, nbits = 0, 0
				}
			}
			for i, f := range m.Fields {
				typ := f.Type
				if typ == "" {
					typ = domains[f.Domain]
				}
				if typ != "bit" {
					flush()
				}
				switch typ {
				case "bit":
					if nbits == 8 {
						flush()
					}
					if i%2 == 0 {
						bits |= 1 << nbits
					}
					nbits++
				case "octet":
					p = append(p, byte(i+1))
				case "short":
					p = binary.BigEndian.AppendUint16(p, uint16(1000+i))
				case "long":
					p = binary.BigEndian.AppendUint32(p, uint32(100000+i))
				case "longlong":
					p = binary.BigEndian.AppendUint64(p, uint64(1<<40+i))
				case "shortstr":
					p = append(p, 3, 'a', 'b', byte('0'+i))
				case "longstr":
					p = append(p, 0, 0, 0, 2, 'x', byte('0'+i))
				case "timestamp":
					p = binary.BigEndian.AppendUint64(p, 1700000000)
				case "table":
					p = append(p, EncodeTable(Table{"k": int32(i)})...)
				default:
					t.Fatalf("%s: field %s has unknown type %q", name, f.Name, typ)
				}
			}
			flush()
			got, err := DecodeMethod(p)
			if err != nil {
				t.Errorf("%s: decode: %v", name, err)
				continue
			}
			if got.Name() != name {
				t.Errorf("%d.%d decodes as %s, spec calls it %s", c.Index, m.Index, got.Name(), name)
			}
			if got.HasContent() != (m.Content == "1") {
				t.Errorf("%s: HasContent %v, spec content=%q", name, got.HasContent(), m.Content)
			}
			frame := AppendMethodFrame(nil, 0, got)
			if back := frame[7 : len(frame)-1]; !bytes.Equal(back, p) {
				t.Errorf("%s: re-encoded\n%x\nwant\n%x", name, back, p)
			}
		}
	}
	if count != 60 {
		t.Errorf("spec has %d methods, expected RabbitMQ's 60", count)
	}
}
