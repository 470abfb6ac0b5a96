import Testing
@testable import AgentpenProxy
