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
}
