import AgentpenPolicy
print(Options.usage)
