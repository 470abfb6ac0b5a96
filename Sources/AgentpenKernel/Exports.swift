// The kernel edge throws AgentpenSystem's SystemError and hands out its
// Descriptor: whoever imports the edge gets both names with it.
@_exported import AgentpenSystem
