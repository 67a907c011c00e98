using System.Net;
using System.Text;
using SlowFast.Hub;

namespace SlowFast.Fuzz.Targets;

/// <summary>
/// What the Hugging Face hub (or whoever answers at its address) sends. The first line picks the parser:
/// <c>info</c>: the model-info JSON; <c>index</c>: a downloaded model.safetensors.index.json;
/// <c>head</c>: the answer to a HEAD on a file (a status line then "Name: value" header lines), read by
/// <see cref="HubHttp.HeadFileAsync"/> through an in-memory handler (no network).
/// </summary>
public sealed class HubTarget : FuzzTarget
{
    public override string Name => "hub";
    public override string Description => "hub model-info JSON, safetensors index, file headers (HEAD)";

    private static readonly RepoId Repo = RepoId.Parse("org/model");

    /// <summary>
    /// <see cref="UserError"/> (a <see cref="HubError"/> included), and <c>TransientFailure</c>: the hub client's
    /// signal to retry, which its retry loop turns into a one-line UserError when the tries run out.
    /// </summary>
    public override bool IsRefusal(Exception e) =>
        base.IsRefusal(e) || (e.GetType().Name == "TransientFailure" && IsOneLine(e.Message));

    public override void Run(byte[] input)
    {
        string text = Encoding.UTF8.GetString(input);
        int newline = text.IndexOf('\n');
        string mode = newline < 0 ? text : text[..newline];
        string rest = newline < 0 ? "" : text[(newline + 1)..];
        switch (mode)
        {
            case "info":
                HubModelInfo.Parse(Repo, rest);
                break;
            case "index":
                ModelFiles.ReadIndexShards(Scratch.Write("model.safetensors.index.json", Encoding.UTF8.GetBytes(rest)));
                break;
            case "head":
                Head(rest);
                break;
        }
    }

    private static void Head(string response)
    {
        var settings = new HubSettings { Endpoint = "https://hub.invalid", CacheDirectory = Scratch.Folder("hub-cache") };
        using var http = new HubHttp(settings, TimeSpan.FromSeconds(5), new CannedHandler(response));
        http.HeadFileAsync(Repo, "main", "config.json", CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>Answers every request with the same status and headers, built from the fuzz input.</summary>
    private sealed class CannedHandler(string response) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var lines = response.Split('\n');
            int status = int.TryParse(lines[0].Trim(), out int s) && s is >= 100 and <= 999 ? s : 200;
            var answer = new HttpResponseMessage((HttpStatusCode)status) { Content = new ByteArrayContent([]), RequestMessage = request };
            foreach (var line in lines.Skip(1))
            {
                int colon = line.IndexOf(':');
                if (colon <= 0) continue;
                string name = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                // As a server would send them: the client files each header under the response or the content.
                try
                {
                    if (!answer.Headers.TryAddWithoutValidation(name, value)) answer.Content.Headers.TryAddWithoutValidation(name, value);
                }
                catch (FormatException) { } // not a header name HTTP allows: no server can send it
            }
            return Task.FromResult(answer);
        }
    }
}
