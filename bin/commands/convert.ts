import { convertConfig } from '../../core/config.js';
import { InputFileError } from '../../core/yaml-docs.js';
import { yamlLib } from '../../core/yaml-lib.js';
import { InputError, parseFlags, UsageError, type Command } from '../cli.js';
import { readInput } from '../io.js';

const help = `Usage: ovnkube-route convert -f FILE [--name NAME] [-o yaml|json]

Convert a route config file (cr-config.json / cr-config.yaml) into a Route object.
The file holds a list of entries:
  {"svc": "default/nginx1", "dev": "eth0"}                    pin a Service's ClusterIPs to eth0
  {"route": "172.16.0.0/16", "dev": "eth1", "via": "10.124.2.1"} pin a CIDR (optionally via a gateway)
  {"route": "default", "dev": "eth0", "via": "169.254.1.1"}    replace the default route
Values are trimmed and canonicalised. A full Route object is accepted too and printed normalised.
On bad input nothing is printed on stdout; stderr names the file, entry, line, field and what was expected.

Flags:
  -f, --file FILE    config file to read ("-" for stdin)
      --name NAME    metadata.name of the Route (default: the file name without extension)
  -o, --output FMT   yaml (default) or json
  -h, --help         show this help
`;

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert a cr-config.json/yaml route list into a Route object',
  help,
  async run(argv, io) {
    const values = parseFlags(argv, {
      file: { type: 'string', short: 'f' },
      name: { type: 'string' },
      output: { type: 'string', short: 'o', default: 'yaml' },
    });
    if (!values.file) throw new UsageError('-f FILE is required');
    if (values.output !== 'yaml' && values.output !== 'json') throw new UsageError(`-o must be yaml or json, got "${values.output}"`);
    if (values.name !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(values.name)) {
      throw new UsageError(`--name "${values.name}" is not a valid Route name (lowercase DNS-1123 subdomain)`);
    }
    const text = await readInput(values.file, io);
    let route;
    try {
      route = convertConfig(text, values.file === '-' ? '<stdin>' : values.file, values.name ? { name: values.name } : {});
    } catch (e) {
      if (e instanceof InputFileError) throw new InputError(e.message);
      throw e;
    }
    io.stdout.write(values.output === 'json' ? JSON.stringify(route, null, 2) + '\n' : yamlLib().stringify(route));
    return 0;
  },
};
