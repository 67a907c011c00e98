using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using SlowFast.Model;
using SlowFast.Model.Engine;

namespace SlowFast.Extensions.AI;

public static class SlowFastServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="SlowFastModel"/> loaded from <paramref name="modelDir"/> on first use
    /// (disposed with the container), and a singleton <see cref="SlowFastChatClient"/> over it, also as
    /// <see cref="IChatClient"/>.
    /// </summary>
    public static IServiceCollection AddSlowFastChatClient(this IServiceCollection services, string modelDir,
        Action<SlowFastChatClientOptions>? configure = null, EngineOptions? engine = null, string? tokenizerJson = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(modelDir);
        services.AddSingleton(_ => SlowFastModel.Load(modelDir, tokenizerJson, engine));
        services.AddSingleton(provider =>
        {
            var options = new SlowFastChatClientOptions();
            configure?.Invoke(options);
            return new SlowFastChatClient(provider.GetRequiredService<SlowFastModel>(), options);
        });
        services.AddSingleton<IChatClient>(provider => provider.GetRequiredService<SlowFastChatClient>());
        return services;
    }

    /// <summary>
    /// Registers a singleton <see cref="OpenAIVideoChatClient"/> for the OpenAI-compatible server at
    /// <paramref name="endpoint"/> (e.g. <c>http://127.0.0.1:8080/v1</c>: <c>slowfast serve</c>, vLLM, SGLang),
    /// also as <see cref="IChatClient"/>; it has its own HttpClient, disposed with the container.
    /// </summary>
    public static IServiceCollection AddOpenAIVideoChatClient(this IServiceCollection services, Uri endpoint, string model, string? apiKey = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentException.ThrowIfNullOrEmpty(model);
        services.AddSingleton(_ => new OpenAIVideoChatClient(endpoint, model, apiKey));
        services.AddSingleton<IChatClient>(provider => provider.GetRequiredService<OpenAIVideoChatClient>());
        return services;
    }
}
