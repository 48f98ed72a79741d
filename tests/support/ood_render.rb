# Renders one of an Open OnDemand app's ERB files as the portal does: ERB with trim mode
# "-", in a context where each value the portal passes (the form's attributes for
# submit.yml.erb and template/*, connection.yml's values for view.html.erb) is a method.
#   ruby ood_render.rb FILE CONTEXT.json [--yaml]    (--yaml: print the result as JSON)
require "erb"
require "json"
require "yaml"

class PortalContext
  def initialize(values)
    values.each { |name, value| define_singleton_method(name) { value } }
  end

  def render(text)
    ERB.new(text, trim_mode: "-").result(binding)
  end
end

file, context_file, mode = ARGV
out = PortalContext.new(JSON.parse(File.read(context_file))).render(File.read(file))
if mode == "--yaml"
  puts JSON.generate(YAML.safe_load(out))
else
  print out
end
