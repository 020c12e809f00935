package v1alpha1

// What a grant is, in the words every part of rolecall uses: where its binding lands, which
// role it binds, and how it reads to a person. One home, so that the policy that allows a
// grant, the binding that holds it and the page and mail that offer it never disagree.

// LandsIn is the namespace the grant's RoleBinding is made in: its own namespace, or the
// invitation's; "" for a cluster-wide grant, which is a ClusterRoleBinding.
func (g Grant) LandsIn(invitationNamespace string) string {
	switch {
	case g.ClusterWide:
		return ""
	case g.Namespace != "":
		return g.Namespace
	}
	return invitationNamespace
}

// RoleKind is the kind of role the grant binds: "Role" or "ClusterRole".
func (g Grant) RoleKind() string {
	if g.Role != "" {
		return "Role"
	}
	return "ClusterRole"
}

// RoleName is the name of the role the grant binds.
func (g Grant) RoleName() string {
	if g.Role != "" {
		return g.Role
	}
	return g.ClusterRole
}

// RoleText is the role as people read it: "ClusterRole edit", "Role deployer".
func (g Grant) RoleText() string {
	return g.RoleKind() + " " + g.RoleName()
}

// Where says where the grant applies: "in namespace team-a", "across the whole cluster".
func (g Grant) Where(invitationNamespace string) string {
	if ns := g.LandsIn(invitationNamespace); ns != "" {
		return "in namespace " + ns
	}
	return "across the whole cluster"
}

// Describe is the grant in one phrase: "ClusterRole edit in namespace team-a".
func (g Grant) Describe(invitationNamespace string) string {
	return g.RoleText() + " " + g.Where(invitationNamespace)
}

// Summary is the grant's short form for kubectl's Grants column: "edit",
// "role/deployer@team-b", "view(cluster)".
func (g Grant) Summary() string {
	name := g.ClusterRole
	if g.Role != "" {
		name = "role/" + g.Role
	}
	switch {
	case g.ClusterWide:
		name += "(cluster)"
	case g.Namespace != "":
		name += "@" + g.Namespace
	}
	return name
}
