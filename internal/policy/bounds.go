package policy

import "github.com/google/cel-go/checker"

// Sizes Kubernetes itself enforces, for what the CRD schemas leave open.
const (
	// maxRequestBytes is kube-apiserver's limit on a request body; Kubernetes bounds the
	// strings, lists and maps a schema leaves open by it in its own CEL estimates.
	maxRequestBytes = 3 * 1024 * 1024
	// maxQualifiedNameLength is a label or annotation key: a DNS subdomain prefix (253), a
	// slash and a name (63).
	maxQualifiedNameLength = 253 + 1 + 63
	// maxLabelValueLength is a label value.
	maxLabelValueLength = 63
	// maxAnnotationsBytes is the total size of an object's annotations, keys and values.
	maxAnnotationsBytes = 256 * 1024
	// maxObjectNameLength is a DNS subdomain, the longest name an Invitation may have.
	maxObjectNameLength = 253
	// maxNamespaceNameLength is a DNS label, the longest name a Namespace may have.
	maxNamespaceNameLength = 63
	// maxFormattedScalar is the longest text format() makes of a number, bool, duration or
	// timestamp: a double near 1e308 with the largest precision CEL allows (100).
	maxFormattedScalar = 512
	// formattedBytesPerRune covers format()'s %x, which writes two hex digits for each byte
	// of a rune of up to four bytes.
	formattedBytesPerRune = 8
)

// bound is the largest value a rule can meet at one place in its variables: a string's
// length, a list's items or a map's entries, and the bounds of what they hold.
type bound struct {
	max uint64
	// scalar marks a number, bool or duration, whose size CEL counts as 1.
	scalar bool
	// fields are an object's fields. An object is a map whose keys are its field names.
	fields map[string]*bound
	// key bounds a map's keys.
	key *bound
	// elem bounds a list's items or a map's values.
	elem *bound
}

func scalar() *bound              { return &bound{max: 1, scalar: true} }
func str(maxLength uint64) *bound { return &bound{max: maxLength} }

func list(maxItems uint64, items *bound) *bound { return &bound{max: maxItems, elem: items} }

func mapOf(maxEntries uint64, key, value *bound) *bound {
	return &bound{max: maxEntries, key: key, elem: value}
}

func object(fields map[string]*bound) *bound {
	longest := uint64(0)
	for name := range fields {
		longest = max(longest, uint64(len(name)))
	}
	return &bound{max: uint64(len(fields)), fields: fields, key: str(longest)}
}

func (b *bound) size() *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: b.max}
}

// formatted bounds the length of the text format() makes of a value within b.
func (b *bound) formatted() uint64 {
	switch {
	case b.scalar:
		return maxFormattedScalar
	case b.fields != nil:
		total := uint64(2)
		for name, f := range b.fields {
			total = addSat(total, addSat(uint64(len(name))+4, f.formatted()))
		}
		return total
	case b.key != nil:
		return addSat(2, mulSat(b.max, addSat(addSat(b.key.formatted(), b.elem.formatted()), 4)))
	case b.elem != nil:
		return addSat(2, mulSat(b.max, addSat(b.elem.formatted(), 2)))
	default:
		return addSat(mulSat(b.max, formattedBytesPerRune), 2)
	}
}

// openStringMap is a map of strings whose number of entries nothing declares, bounded as
// Kubernetes bounds one in its CEL estimates: by how many of the smallest entries fit in a
// request.
func openStringMap(key, value *bound) *bound {
	return mapOf((maxRequestBytes-2)/(2+6), key, value)
}

// inviterBound mirrors the Inviter type's schema (api/v1alpha1).
func inviterBound() *bound {
	return object(map[string]*bound{
		"username": str(512),
		"uid":      str(256),
		"groups":   list(256, str(512)),
		// Nothing declares how long a key of extra may be; a request bounds it.
		"extra": mapOf(32, str(maxRequestBytes-2), list(32, str(1024))),
	})
}

// invitationSpecBound mirrors the InvitationSpec type's schema (api/v1alpha1).
func invitationSpecBound() *bound {
	return object(map[string]*bound{
		"email": str(254),
		"grants": list(maxGrants, object(map[string]*bound{
			"role":        str(253),
			"clusterRole": str(253),
			"namespace":   str(63),
			"clusterWide": scalar(),
			"idpGroup":    str(253),
		})),
		"maxUses":              scalar(),
		"expiresAfter":         str(32),
		"tokenType":            str(uint64(len("Custom"))),
		"customTokenSecretRef": object(map[string]*bound{"name": str(253)}),
		"redirectURL":          str(2048),
		"grantDuration":        str(32),
		"upgrade":              str(uint64(len("Replace"))),
		"delivery":             object(map[string]*bound{"email": scalar(), "webhook": scalar()}),
		"hideInviter":          scalar(),
		"revoked":              scalar(),
		"revokeGrants":         scalar(),
		"inviter":              inviterBound(),
	})
}

// metadataBound is the metadata ruleVariables passes, with the limits Kubernetes validates
// on every object's labels and annotations.
func metadataBound(nameLength uint64, more map[string]*bound) *bound {
	fields := map[string]*bound{
		"name":        str(nameLength),
		"labels":      openStringMap(str(maxQualifiedNameLength), str(maxLabelValueLength)),
		"annotations": mapOf(maxAnnotationsBytes, str(maxQualifiedNameLength), str(maxAnnotationsBytes)),
	}
	for k, v := range more {
		fields[k] = v
	}
	return object(fields)
}

// variableBounds bounds each variable a rule can read, as ruleVariables shapes it.
var variableBounds = map[string]*bound{
	InviterVariable: inviterBound(),
	InvitationVariable: object(map[string]*bound{
		"metadata": metadataBound(maxObjectNameLength, map[string]*bound{"namespace": str(maxNamespaceNameLength)}),
		"spec":     invitationSpecBound(),
	}),
	NamespaceVariable:  namespaceBound(),
	NamespacesVariable: list(maxGrants, namespaceBound()),
}

// maxGrants mirrors spec.grants' MaxItems: each grant lands in at most one namespace.
const maxGrants = 16

// namespaceBound is a Namespace as ruleVariables passes it.
func namespaceBound() *bound {
	return object(map[string]*bound{"metadata": metadataBound(maxNamespaceNameLength, nil)})
}

// lookupBound follows a field path, such as [invitation spec grants @items role], from a
// variable.
func lookupBound(path []string) *bound {
	if len(path) == 0 {
		return nil
	}
	b := variableBounds[path[0]]
	for _, step := range path[1:] {
		if b == nil {
			return nil
		}
		switch step {
		case "@items", "@values":
			// An object's values differ by field, so nothing general is known of them.
			b = b.elem
		case "@keys":
			// A comprehension over a dynamic value names its variable a key even when the
			// value turns out to be a list, whose iteration yields the items.
			if b.key != nil {
				b = b.key
			} else {
				b = b.elem
			}
		case "@indices":
			b = scalar()
		default:
			b = b.fields[step]
		}
	}
	return b
}
